/**
 * stdio upstream: @modelcontextprotocol/server-everything as a child behind the proxy's Streamable
 * HTTP and legacy SSE endpoints, driven by the official SDK client; plus a tiny fake stdio server
 * (inline `node -e`) for what the real one cannot show: unknown methods relayed unchanged, the
 * child's environment, stderr in the log, a crash with its exit code.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync, readdirSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { pino } from "pino";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
  type LoggingMessageNotification,
} from "@modelcontextprotocol/sdk/types.js";
import { createStdioUpstream, type StdioOptions, type StdioUpstream } from "../../../../proxy/server/upstream/stdio/relay.js";
import type { ProxyHooks } from "../../../../proxy/server/hooks.js";
import { REPO } from "../../../support/vectors.js";
import { alive, sleep, waitFor } from "../../../support/wait.js";

// ---------------------------------------------------------------------------------------------
// helpers

const EVERYTHING = join(REPO, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const EVERYTHING_CMD = [process.execPath, EVERYTHING, "stdio"];

const silent = pino({ level: "silent" });

/** Live children of this process whose command line contains `marker` (Linux /proc). */
function childPids(marker: string): number[] {
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

interface Recorded extends ProxyHooks {
  errors: string[];
  opened: number;
  closed: number;
}
function recordingHooks(): Recorded {
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

type Defer = (f: () => unknown) => void;

/** Runs `fn`; whatever it deferred runs afterwards, last first, even when it failed. */
async function scoped(fn: (defer: Defer) => Promise<void>): Promise<void> {
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

interface Proxy {
  up: StdioUpstream;
  base: string;
  close(): Promise<void>;
}

async function startProxy(defer: Defer, opts: Partial<StdioOptions> = {}): Promise<Proxy> {
  const up = createStdioUpstream({ command: EVERYTHING_CMD, cwd: REPO, log: silent, ...opts });
  const server = http.createServer((req, res) => {
    if (!up.handle(req, res)) {
      res.statusCode = 404;
      res.end();
    }
  });
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

function newClient(capabilities: Record<string, unknown> = {}): Client {
  return new Client({ name: "stdio-test", version: "1.0.0" }, { capabilities });
}

async function connectHttp(
  defer: Defer,
  p: Proxy,
  client = newClient(),
  fetchImpl?: typeof fetch,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${p.base}/mcp`), fetchImpl ? { fetch: fetchImpl } : undefined);
  defer(() => client.close());
  await client.connect(transport);
  return { client, transport };
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? "").join("\n");
}

const INIT = {
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
};
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

/** POSTs to /mcp and returns status, headers and the JSON-RPC messages of the (SSE or JSON) body. */
async function post(p: Proxy, body: unknown, sessionId?: string): Promise<{ status: number; headers: Headers; json: unknown; messages: unknown[] }> {
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

function isJsonRpcError(body: unknown): boolean {
  const b = body as { jsonrpc?: string; error?: { code?: unknown; message?: unknown } };
  return b?.jsonrpc === "2.0" && typeof b.error?.code === "number" && typeof b.error.message === "string";
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP with the real server

test("streamable HTTP: initialize, tools, echo, progress while running, logs on the GET stream, DELETE ends the child", () =>
  scoped(async (defer) => {
    const hooks = recordingHooks();
    const p = await startProxy(defer, { hooks });
    const before = childPids(EVERYTHING);
    // Tee what arrives on the background GET stream, to see where log messages travel.
    let getStreamText = "";
    const watchingFetch: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      if ((init?.method ?? "GET") === "GET" && r.body) {
        const [a, b] = r.body.tee();
        void (async () => {
          const dec = new TextDecoder();
          try {
            for await (const chunk of b as unknown as AsyncIterable<Uint8Array>) getStreamText += dec.decode(chunk, { stream: true });
          } catch {
            // stream aborted
          }
        })();
        return new Response(a, { status: r.status, statusText: r.statusText, headers: r.headers });
      }
      return r;
    };
    const client = newClient();
    const logs: LoggingMessageNotification[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n));
    const { transport } = await connectHttp(defer, p, client, watchingFetch);
    assert.equal(p.up.sessions(), 1);
    assert.ok(transport.sessionId, "session id from the proxy");
    const pids = childPids(EVERYTHING).filter((x) => !before.includes(x));
    assert.equal(pids.length, 1, "one child for the session");
    const pid = pids[0]!;

    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === "echo"));

    const echo = await client.callTool({ name: "echo", arguments: { message: "hello through stdio" } });
    assert.match(textOf(echo), /hello through stdio/);

    const t0 = Date.now();
    const progressAt: number[] = [];
    const long = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } },
      undefined,
      { onprogress: () => void progressAt.push(Date.now() - t0), timeout: 20_000 },
    );
    const doneAt = Date.now() - t0;
    assert.match(textOf(long), /completed/i);
    assert.ok(progressAt.length >= 3, `progress notifications: ${progressAt.length}`);
    assert.ok(progressAt[0]! < doneAt - 800, `first progress at ${progressAt[0]} ms, result at ${doneAt} ms`);
    assert.ok(progressAt[progressAt.length - 1]! - progressAt[0]! >= 700, `progress spread: ${progressAt.join(",")}`);

    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
    await waitFor(() => logs.length >= 1 && getStreamText.includes("notifications/message"), 8_000, "a log message on the GET stream");
    assert.ok(hooks.opened >= 2, "SSE streams reported");

    await transport.terminateSession();
    await waitFor(() => p.up.sessions() === 0, 5_000, "session count 0");
    await waitFor(() => !alive(pid), 5_000, `child ${pid} to exit`);
    assert.deepEqual(hooks.errors, [], "a DELETE is not an upstream error");
    await client.close();
    await p.close();
    assert.equal(hooks.opened, hooks.closed, "every SSE stream closed");
  }));

test("two concurrent sessions get separate children", () =>
  scoped(async (defer) => {
    const p = await startProxy(defer);
    const before = childPids(EVERYTHING);
    const [a, b] = await Promise.all([connectHttp(defer, p), connectHttp(defer, p)]);
    assert.equal(p.up.sessions(), 2);
    assert.notEqual(a.transport.sessionId, b.transport.sessionId);
    const pids = childPids(EVERYTHING).filter((x) => !before.includes(x));
    assert.equal(pids.length, 2, "two children");
    const [ea, eb] = await Promise.all([
      a.client.callTool({ name: "echo", arguments: { message: "from a" } }),
      b.client.callTool({ name: "echo", arguments: { message: "from b" } }),
    ]);
    assert.match(textOf(ea), /from a/);
    assert.match(textOf(eb), /from b/);
    await a.transport.terminateSession();
    await waitFor(() => p.up.sessions() === 1, 5_000, "one session left");
    assert.match(textOf(await b.client.callTool({ name: "echo", arguments: { message: "b still" } })), /b still/);
    await b.transport.terminateSession();
    await waitFor(() => pids.every((x) => !alive(x)), 5_000, "both children to exit");
  }));

test("session limit → 503, unknown session → 404, body limit → 413, bad requests answered with JSON-RPC errors", () =>
  scoped(async (defer) => {
    const p = await startProxy(defer, { maxSessions: 1, bodyLimit: 2048 });
    const { client, transport } = await connectHttp(defer, p);
    const over = await post(p, INIT);
    assert.equal(over.status, 503);
    assert.ok(isJsonRpcError(over.json), JSON.stringify(over.json));
    assert.equal(p.up.sessions(), 1);

    const unknown = await post(p, { jsonrpc: "2.0", id: 1, method: "tools/list" }, randomUUID());
    assert.equal(unknown.status, 404);
    assert.ok(isJsonRpcError(unknown.json));
    const unknownGet = await fetch(`${p.base}/mcp`, { headers: { accept: "text/event-stream", "mcp-session-id": randomUUID() } });
    assert.equal(unknownGet.status, 404);
    assert.ok(isJsonRpcError(await unknownGet.json()));
    const unknownSse = await fetch(`${p.base}/message?sessionId=${randomUUID()}`, { method: "POST", headers: MCP_HEADERS, body: "{}" });
    assert.equal(unknownSse.status, 404);
    assert.ok(isJsonRpcError(await unknownSse.json()));

    const big = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { message: "x".repeat(4096) } } };
    const tooLarge = await post(p, big, transport.sessionId);
    assert.equal(tooLarge.status, 413);
    assert.ok(isJsonRpcError(tooLarge.json));
    // Without Content-Length (chunked): stopped while reading.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${p.base}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, "mcp-session-id": transport.sessionId! } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      });
      req.on("error", () => {}); // the proxy may close before all is written
      req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
      for (let i = 0; i < 4; i++) req.write(JSON.stringify(big).slice(i * 1200, (i + 1) * 1200));
      req.end();
    });
    assert.equal(chunked.status, 413);
    assert.ok(isJsonRpcError(JSON.parse(chunked.body)));

    const garbage = await post(p, "{not json", transport.sessionId);
    assert.equal(garbage.status, 400);
    assert.ok(isJsonRpcError(garbage.json));

    const noSession = await post(p, { jsonrpc: "2.0", id: 3, method: "tools/list" });
    assert.equal(noSession.status, 400);
    assert.ok(isJsonRpcError(noSession.json));

    const put = await fetch(`${p.base}/mcp`, { method: "PUT" });
    assert.equal(put.status, 405);
    await put.body?.cancel();
    const other = await fetch(`${p.base}/elsewhere`);
    assert.equal(other.status, 404, "other paths are left to the caller");
    await other.body?.cancel();

    // The session itself is unharmed by all this.
    assert.match(textOf(await client.callTool({ name: "echo", arguments: { message: "still here" } })), /still here/);
    await client.close();
    await p.close();
    assert.equal(p.up.sessions(), 0);
  }));

test("a child killed from outside ends its session (pending request answered, then 404); the upstream stays usable", () =>
  scoped(async (defer) => {
    const hooks = recordingHooks();
    const p = await startProxy(defer, { hooks });
    const before = childPids(EVERYTHING);
    const first = await connectHttp(defer, p);
    const pid = childPids(EVERYTHING).filter((x) => !before.includes(x))[0];
    assert.ok(pid !== undefined);
    let progressed = 0;
    const t0 = Date.now();
    const pending = first.client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 30, steps: 60 } },
      undefined,
      { onprogress: () => void progressed++, timeout: 20_000 },
    );
    pending.catch(() => {});
    await waitFor(() => progressed >= 1, 5_000, "the operation to be under way");
    process.kill(pid, "SIGKILL");
    await assert.rejects(pending, /exited/);
    assert.ok(Date.now() - t0 < 10_000, "the pending request was answered, not left to time out");
    await waitFor(() => p.up.sessions() === 0, 5_000, "the session to end");
    assert.deepEqual(hooks.errors, ["child-exit"]);
    assert.ok(!alive(pid));
    await assert.rejects(first.client.listTools(), /404|Session not found/);
    const raw = await post(p, { jsonrpc: "2.0", id: 9, method: "tools/list" }, first.transport.sessionId);
    assert.equal(raw.status, 404);

    const second = await connectHttp(defer, p);
    assert.equal(p.up.sessions(), 1);
    assert.match(textOf(await second.client.callTool({ name: "echo", arguments: { message: "again" } })), /again/);
  }));

test("server-to-client requests: sampling goes to the client and its answer back to the child", () =>
  scoped(async (defer) => {
    const p = await startProxy(defer);
    const client = newClient({ sampling: {} });
    let asked = 0;
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      asked++;
      return { model: "test-model", role: "assistant", content: { type: "text", text: "sampled by the client" } };
    });
    const { transport } = await connectHttp(defer, p, client);
    const r = await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "hi", maxTokens: 10 } }, undefined, { timeout: 10_000 });
    assert.equal(asked, 1);
    assert.match(textOf(r), /sampled by the client/);
    await transport.terminateSession();
  }));

test("idle sessions end (child killed) and are then unknown; a request awaiting its answer is not idle", () =>
  scoped(async (defer) => {
    const p = await startProxy(defer, { sessionIdleMs: 700 });
    const before = childPids(EVERYTHING);
    const { client, transport } = await connectHttp(defer, p);
    const pid = childPids(EVERYTHING).filter((x) => !before.includes(x))[0];
    assert.ok(pid !== undefined);
    // Quiet for longer than the idle bound, but waited for: survives.
    const quiet = await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 1.5, steps: 1 } });
    assert.match(textOf(quiet), /completed/i);
    await waitFor(() => p.up.sessions() === 0, 5_000, "the idle session to end");
    await waitFor(() => !alive(pid), 5_000, "the child to exit");
    const r = await post(p, { jsonrpc: "2.0", id: 5, method: "tools/list" }, transport.sessionId);
    assert.equal(r.status, 404);
  }));

test("legacy HTTP+SSE: initialize, tools/list, echo; the child ends with the stream", () =>
  scoped(async (defer) => {
    const hooks = recordingHooks();
    const p = await startProxy(defer, { hooks });
    const before = childPids(EVERYTHING);
    const client = newClient();
    defer(() => client.close());
    await client.connect(new SSEClientTransport(new URL(`${p.base}/sse`)));
    assert.equal(p.up.sessions(), 1);
    const pid = childPids(EVERYTHING).filter((x) => !before.includes(x))[0];
    assert.ok(pid !== undefined);
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === "echo"));
    assert.match(textOf(await client.callTool({ name: "echo", arguments: { message: "over legacy sse" } })), /over legacy sse/);
    // The SDK client dispatches notifications a microtask late, so a progress notification that
    // arrives in the same chunk as the response can lose its handler: only the earlier ones are certain.
    const progress: number[] = [];
    await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } }, undefined, {
      onprogress: (pr) => void progress.push(pr.progress),
    });
    assert.deepEqual(progress.slice(0, 2), [1, 2]);
    await client.close();
    await waitFor(() => p.up.sessions() === 0, 5_000, "the session to end with the stream");
    await waitFor(() => !alive(pid), 5_000, "the child to exit");
    assert.deepEqual(hooks.errors, []);
    await p.close();
    assert.equal(hooks.opened, hooks.closed);
  }));

// ---------------------------------------------------------------------------------------------
// A fake stdio server: what a relay must not touch.

const FAKE = String.raw`
const marker = process.argv[1];
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
process.stderr.write("fake server up " + marker + "\n");
let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const m = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    if (m.method === "initialize") out({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: {}, serverInfo: { name: "fake", version: "0" } } });
    else if (m.method === "x/echo") { process.stderr.write("echoing " + JSON.stringify(m.id) + "\n"); out({ jsonrpc: "2.0", id: m.id, result: { got: m.params, extra: { list: [1, "two", null, { deep: true }] } } }); }
    else if (m.method === "x/env") out({ jsonrpc: "2.0", id: m.id, result: { env: process.env, cwd: process.cwd() } });
    else if (m.method === "x/notify") { out({ jsonrpc: "2.0", method: "x/custom-notification", params: { n: 1 } }); out({ jsonrpc: "2.0", id: m.id, result: {} }); }
    else if (m.method === "x/exit") process.exit(3);
    else if (m.id !== undefined && m.method) out({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "unknown: " + m.method } });
  }
});
`;

test("fake stdio server: unknown methods and notifications relayed unchanged, minimal env, stderr to the log, crash → exit code logged", () =>
  scoped(async (defer) => {
    const records: Record<string, unknown>[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    const hooks = recordingHooks();
    const marker = `fake-${randomUUID()}`;
    const cwd = realpathSync(tmpdir());
    process.env.STDIO_TEST_SECRET = "must-not-leak";
    defer(() => delete process.env.STDIO_TEST_SECRET);
    const p = await startProxy(defer, { command: [process.execPath, "-e", FAKE, marker], env: { EXTRA_VAR: "given" }, cwd, log, hooks });
    const ac = new AbortController();
    defer(() => ac.abort());

    const init = await post(p, INIT);
    assert.equal(init.status, 200);
    const sid = init.headers.get("mcp-session-id");
    assert.ok(sid);
    assert.deepEqual(init.messages, [
      { jsonrpc: "2.0", id: 0, result: { protocolVersion: "2025-06-18", capabilities: {}, serverInfo: { name: "fake", version: "0" } } },
    ]);
    assert.equal((await post(p, { jsonrpc: "2.0", method: "notifications/initialized" }, sid)).status, 202);

    const params = { s: "ü✓", n: 1.5, nested: { a: [1, { b: null }] }, _meta: { vendor: "x" } };
    const echo = await post(p, { jsonrpc: "2.0", id: "req-1", method: "x/echo", params }, sid);
    assert.deepEqual(echo.messages, [{ jsonrpc: "2.0", id: "req-1", result: { got: params, extra: { list: [1, "two", null, { deep: true }] } } }]);

    const unknown = await post(p, { jsonrpc: "2.0", id: 7, method: "x/nope" }, sid);
    assert.deepEqual(unknown.messages, [{ jsonrpc: "2.0", id: 7, error: { code: -32601, message: "unknown: x/nope" } }]);

    const batch = await post(p, [
      { jsonrpc: "2.0", id: 10, method: "x/echo", params: { i: 10 } },
      { jsonrpc: "2.0", id: 11, method: "x/echo", params: { i: 11 } },
    ], sid);
    assert.equal(batch.status, 200);
    assert.deepEqual(batch.messages.map((m) => (m as { id: number }).id).sort(), [10, 11]);

    const envR = await post(p, { jsonrpc: "2.0", id: 8, method: "x/env" }, sid);
    const { env, cwd: childCwd } = (envR.messages[0] as { result: { env: Record<string, string>; cwd: string } }).result;
    assert.equal(childCwd, cwd);
    assert.equal(env.EXTRA_VAR, "given");
    assert.equal(env.STDIO_TEST_SECRET, undefined);
    for (const k of Object.keys(env)) assert.ok(["PATH", "HOME", "EXTRA_VAR"].includes(k), `unexpected env var ${k}`);

    // A notification the proxy knows nothing about reaches the background GET stream.
    const get = await fetch(`${p.base}/mcp`, { headers: { accept: "text/event-stream", "mcp-session-id": sid }, signal: ac.signal });
    assert.equal(get.status, 200);
    const reader = get.body!.getReader();
    await post(p, { jsonrpc: "2.0", id: 12, method: "x/notify" }, sid);
    let seen = "";
    const dec = new TextDecoder();
    const until = Date.now() + 5_000;
    for (let i = 0; i < 100 && !seen.includes("x/custom-notification") && Date.now() < until; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += dec.decode(value, { stream: true });
    }
    assert.match(seen, /"method":"x\/custom-notification","params":\{"n":1\}/);

    // stderr lines are logged with the session id, never written to our stdout.
    await waitFor(() => records.some((r) => r.stderr === `fake server up ${marker}`), 2_000, "stderr line in the log");
    assert.ok(records.some((r) => r.session === sid && r.stderr === 'echoing "req-1"'));

    // The child dies while a request is pending: the request gets an error, the GET stream ends.
    const crash = await post(p, { jsonrpc: "2.0", id: 13, method: "x/exit" }, sid);
    assert.equal(crash.status, 200);
    const err = crash.messages[0] as { id: number; error: { code: number; message: string } };
    assert.equal(err.id, 13);
    assert.match(err.error.message, /exited/);
    for (let i = 0; i < 100; i++) {
      const { done } = await reader.read();
      if (done) break;
    }
    await waitFor(() => p.up.sessions() === 0, 3_000, "the session to end");
    assert.deepEqual(hooks.errors, ["child-exit"]);
    assert.ok(records.some((r) => r.session === sid && r.code === 3), "exit code logged");
    assert.equal((await post(p, { jsonrpc: "2.0", id: 14, method: "x/echo" }, sid)).status, 404);
  }));

test("a command that cannot start → 502 with a JSON-RPC error, no session left", () =>
  scoped(async (defer) => {
    const hooks = recordingHooks();
    const p = await startProxy(defer, { command: ["/nonexistent/mcp-server-binary"], hooks });
    const r = await post(p, INIT);
    assert.equal(r.status, 502);
    assert.ok(isJsonRpcError(r.json));
    assert.equal(p.up.sessions(), 0);
    assert.deepEqual(hooks.errors, ["connect"]);
  }));

test("close() ends every session and child", () =>
  scoped(async (defer) => {
    const p = await startProxy(defer);
    const before = childPids(EVERYTHING);
    await connectHttp(defer, p);
    const b = newClient();
    defer(() => b.close());
    await b.connect(new SSEClientTransport(new URL(`${p.base}/sse`)));
    const pids = childPids(EVERYTHING).filter((x) => !before.includes(x));
    assert.equal(pids.length, 2);
    const t0 = Date.now();
    await p.up.close();
    assert.equal(p.up.sessions(), 0);
    assert.ok(Date.now() - t0 < 5_000);
    await waitFor(() => pids.every((x) => !alive(x)), 5_000, "children to exit");
    const after = await post(p, INIT);
    assert.equal(after.status, 503, "no new sessions after close()");
  }));
