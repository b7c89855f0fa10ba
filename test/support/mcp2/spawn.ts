/** Starting the mcp2 test server (server.ts) as a child process, and bounded waiting. */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { StdioParams } from "./client.js";
import { waitFor, within } from "../wait.js";

// The suite's bounded waits, for the tests that import them from here.
export { waitFor, within };

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled server script (next to this file in the build output). */
export const SERVER_JS = join(here, "server.js");
/** The compiled stdio tee (tee.ts). */
export const TEE_JS = join(here, "tee.js");

export type Era = "modern" | "dual" | "legacy";

/** Parameters for `connectStdio` / `connectV1Stdio`: the server as a stdio child in the given era. */
export function stdioServer(era: Era, env: Record<string, string> = {}): StdioParams {
  return { command: process.execPath, args: [SERVER_JS, "--stdio", "--era", era], env: { PATH: process.env.PATH ?? "", ...env } };
}

export interface HttpServer {
  url: string;
  port: number;
  child: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/** Starts the server over HTTP on a free 127.0.0.1 port; resolves once it listens (bounded). */
export async function startHttpServer(
  era: Era,
  opts: { env?: Record<string, string>; responseMode?: "auto" | "sse" | "json"; httpLegacy?: "sessionful" | "stateless"; startMs?: number } = {},
): Promise<HttpServer> {
  const args = [SERVER_JS, "--http", "0", "--era", era];
  if (opts.responseMode) args.push("--response-mode", opts.responseMode);
  if (opts.httpLegacy) args.push("--http-legacy", opts.httpLegacy);
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? "", ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    if (err.length > 64 * 1024) err = err.slice(-32 * 1024);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
  };
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => fail(new Error(`mcp2 server (${era}, http) did not start in ${opts.startMs ?? 15_000} ms: ${err}`)), opts.startMs ?? 15_000);
    function fail(e: Error): void {
      clearTimeout(t);
      void stop();
      reject(e);
    }
    child.once("exit", (code) => fail(new Error(`mcp2 server (${era}, http) exited with ${code}: ${err}`)));
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /LISTENING (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  return { url: `http://127.0.0.1:${port}/mcp`, port, child, stderr: () => err, stop };
}
