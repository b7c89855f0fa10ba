/**
 * A tiny fake stdio server (inline `node -e`) behind the relay, for what the real one cannot show:
 * unknown methods relayed unchanged, the child's environment, stderr in the log, a crash with its
 * exit code.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomUUID } from "node:crypto";
import { pino } from "pino";
import { waitFor } from "../../../support/wait.js";
import { INIT, post, recordingHooks, scoped, startProxy } from "./harness.js";
import { sessionTag } from "../../../../proxy/server/upstream/stdio/session.js";

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
    assert.deepEqual(init.messages, [{ jsonrpc: "2.0", id: 0, result: { protocolVersion: "2025-06-18", capabilities: {}, serverInfo: { name: "fake", version: "0" } } }]);
    assert.equal((await post(p, { jsonrpc: "2.0", method: "notifications/initialized" }, sid)).status, 202);

    const params = { s: "ü✓", n: 1.5, nested: { a: [1, { b: null }] }, _meta: { vendor: "x" } };
    const echo = await post(p, { jsonrpc: "2.0", id: "req-1", method: "x/echo", params }, sid);
    assert.deepEqual(echo.messages, [{ jsonrpc: "2.0", id: "req-1", result: { got: params, extra: { list: [1, "two", null, { deep: true }] } } }]);

    const unknown = await post(p, { jsonrpc: "2.0", id: 7, method: "x/nope" }, sid);
    assert.deepEqual(unknown.messages, [{ jsonrpc: "2.0", id: 7, error: { code: -32601, message: "unknown: x/nope" } }]);

    const batch = await post(
      p,
      [
        { jsonrpc: "2.0", id: 10, method: "x/echo", params: { i: 10 } },
        { jsonrpc: "2.0", id: 11, method: "x/echo", params: { i: 11 } },
      ],
      sid,
    );
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
    assert.ok(records.some((r) => r.session === sessionTag(sid) && r.stderr === 'echoing "req-1"'));

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
    assert.ok(
      records.some((r) => r.session === sessionTag(sid) && r.code === 3),
      "exit code logged",
    );
    assert.equal((await post(p, { jsonrpc: "2.0", id: 14, method: "x/echo" }, sid)).status, 404);
  }));
