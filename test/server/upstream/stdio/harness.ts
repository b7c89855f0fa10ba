/**
 * The stdio relay behind a plain HTTP server, for its tests: a proxy per test with everything it
 * started undone afterwards, the official SDK client, raw POSTs, children found in /proc.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createStdioUpstream, type StdioOptions, type StdioUpstream } from "../../../../proxy/server/upstream/stdio/relay.js";
import type { ProxyHooks } from "../../../../proxy/server/hooks.js";
import { REPO } from "../../../support/vectors.js";

export const EVERYTHING = join(REPO, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
export const EVERYTHING_CMD = [process.execPath, EVERYTHING, "stdio"];

export const silent = pino({ level: "silent" });

/** Live children of this process whose command line contains `marker` (Linux /proc). */
export function childPids(marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" || Number(fields[1]) !== process.pid) continue;
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (cmd.includes(marker)) out.push(Number(name));
    } catch {
      // raced with an exit
    }
  }
  return out;
}

export interface Recorded extends ProxyHooks {
  errors: string[];
  opened: number;
  closed: number;
}
export function recordingHooks(): Recorded {
  const h: Recorded = {
    errors: [],
    opened: 0,
    closed: 0,
    upstreamError: (k) => void h.errors.push(k),
    streamOpened: () => void h.opened++,
    streamClosed: () => void h.closed++,
  };
  return h;
}

export type Defer = (f: () => unknown) => void;

/** Runs `fn`; whatever it deferred runs afterwards, last first, even when it failed. */
export async function scoped(fn: (defer: Defer) => Promise<void>): Promise<void> {
  const stack: (() => unknown)[] = [];
  try {
    await fn((f) => void stack.push(f));
  } finally {
    for (const f of stack.reverse()) {
      try {
        await f();
      } catch {
        // keep cleaning up
      }
    }
  }
}

export interface Proxy {
  up: StdioUpstream;
  base: string;
  close(): Promise<void>;
}

export async function startProxy(defer: Defer, opts: Partial<StdioOptions> = {}): Promise<Proxy> {
  const up = createStdioUpstream({ command: EVERYTHING_CMD, cwd: REPO, log: silent, ...opts });
  const server = http.createServer((req, res) => up.handle(req, res));
  server.on("upgrade", (req, socket, head) => up.upgrade(req, socket, head));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const proxy: Proxy = {
    up,
    base: `http://127.0.0.1:${port}`,
    close() {
      closed ??= (async () => {
        await up.close();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      })();
      return closed;
    },
  };
  defer(() => proxy.close());
  return proxy;
}

export function newClient(capabilities: Record<string, unknown> = {}): Client {
  return new Client({ name: "stdio-test", version: "1.0.0" }, { capabilities });
}

export async function connectHttp(defer: Defer, p: Proxy, client = newClient(), fetchImpl?: typeof fetch): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${p.base}/mcp`), fetchImpl ? { fetch: fetchImpl } : undefined);
  defer(() => client.close());
  await client.connect(transport);
  return { client, transport };
}

export function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? "").join("\n");
}

export const INIT = {
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
};
export const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

/** POSTs to /mcp and returns status, headers and the JSON-RPC messages of the (SSE or JSON) body. */
export async function post(p: Proxy, body: unknown, sessionId?: string): Promise<{ status: number; headers: Headers; json: unknown; messages: unknown[] }> {
  const headers: Record<string, string> = { ...MCP_HEADERS };
  if (sessionId) headers["mcp-session-id"] = sessionId;
  const r = await fetch(`${p.base}/mcp`, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  let json: unknown;
  const messages: unknown[] = [];
  if ((r.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    for (const line of text.split("\n")) if (line.startsWith("data: ")) messages.push(JSON.parse(line.slice(6)));
  } else if (text) {
    json = JSON.parse(text);
  }
  return { status: r.status, headers: r.headers, json, messages };
}

export function isJsonRpcError(body: unknown): boolean {
  const b = body as { jsonrpc?: string; error?: { code?: unknown; message?: unknown } };
  return b?.jsonrpc === "2.0" && typeof b.error?.code === "number" && typeof b.error.message === "string";
}
