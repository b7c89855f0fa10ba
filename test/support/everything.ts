/** @modelcontextprotocol/server-everything: the real MCP server the tests put behind the proxy. */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { createServer, connect } from "node:net";
import { join } from "node:path";
import { REPO } from "./vectors.js";

export const EVERYTHING = join(REPO, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Start it in streamableHttp mode on a free port; resolves once it accepts connections (bounded). */
export async function startEverythingHttp(): Promise<{ port: number; child: ChildProcess; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING, "streamableHttp"], { env: { PATH: process.env.PATH ?? "", PORT: String(port) }, stdio: ["ignore", "ignore", "ignore"] });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error("server-everything (streamableHttp) did not start");
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
  };
  return { port, child, stop };
}

/**
 * A 2 s, 4-step long-running operation: at least 3 progress notifications, the first well before
 * the result and spread over time, i.e. streamed as written, not held until the end.
 */
export async function assertStreamedProgress(client: Client): Promise<number[]> {
  const progress: number[] = [];
  const t0 = Date.now();
  await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } }, undefined, {
    onprogress: () => progress.push(Date.now() - t0),
    timeout: 20_000,
  });
  const done = Date.now() - t0;
  assert.ok(progress.length >= 3, `progress notifications: ${progress.length}`);
  assert.ok(progress[0]! < done - 1000, `first progress at ${progress[0]} ms, result at ${done} ms`);
  assert.ok(progress[progress.length - 1]! - progress[0]! >= 900, `spread ${progress.join(",")}`);
  return progress;
}
