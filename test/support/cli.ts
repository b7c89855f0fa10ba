/** The built CLI run as a child, asynchronously (the test's own servers keep answering meanwhile). */
import { spawn } from "node:child_process";
import { CLI, REPO } from "./vectors.js";
import { within } from "./wait.js";

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], timeoutMs = 30_000): Promise<CliRun> {
  return within(
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.once("error", reject);
      child.once("exit", (code) => resolve({ code, stdout, stderr }));
    }),
    timeoutMs,
    `attestable-mcp ${args.join(" ")}`,
  );
}
