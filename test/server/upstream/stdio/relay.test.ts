/**
 * The stdio relay as assembled: @modelcontextprotocol/server-everything as a child behind the
 * proxy's Streamable HTTP endpoint, driven by the official SDK client; limits, bad requests, a
 * child killed from outside, idle sessions, a command that cannot start, close(), and what is not
 * served (other paths, Upgrade requests).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { randomUUID } from "node:crypto";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { CreateMessageRequestSchema, LoggingMessageNotificationSchema, type LoggingMessageNotification } from "@modelcontextprotocol/sdk/types.js";
import { createStdioUpstream } from "../../../../proxy/server/upstream/stdio/relay.js";
import { ConfigError } from "../../../../proxy/core/errors.js";
import { alive, waitFor } from "../../../support/wait.js";
import { EVERYTHING, INIT, MCP_HEADERS, childPids, connectHttp, isJsonRpcError, newClient, post, recordingHooks, scoped, silent, startProxy, textOf } from "./harness.js";

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
    const long = await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } }, undefined, {
      onprogress: () => void progressAt.push(Date.now() - t0),
      timeout: 20_000,
    });
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
    const [ea, eb] = await Promise.all([a.client.callTool({ name: "echo", arguments: { message: "from a" } }), b.client.callTool({ name: "echo", arguments: { message: "from b" } })]);
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
    const other = await fetch(`${p.base}/elsewhere?x=1`);
    assert.equal(other.status, 404, "other paths are answered 404 by the relay");
    const otherBody = (await other.json()) as { error: { message: string } };
    assert.ok(isJsonRpcError(otherBody));
    assert.equal(otherBody.error.message, "no MCP endpoint at /elsewhere: use /mcp (Streamable HTTP) or /sse (legacy)");

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
    const pending = first.client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 30, steps: 60 } }, undefined, { onprogress: () => void progressed++, timeout: 20_000 });
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

test("an Upgrade request is refused on its socket (no WebSocket on a stdio upstream); an empty command is a ConfigError", () =>
  scoped(async (defer) => {
    const p = await startProxy(defer);
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect(Number(new URL(p.base).port), "127.0.0.1", () => {
        c.write("GET /mcp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
      });
      let got = "";
      c.setEncoding("utf8");
      c.on("data", (d: string) => (got += d));
      c.on("end", () => resolve(got));
      c.on("error", reject);
      c.setTimeout(5_000, () => c.destroy(new Error("timeout")));
    });
    assert.equal(reply, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert.equal(p.up.sessions(), 0);
    assert.throws(
      () => createStdioUpstream({ command: [], log: silent }),
      (e: unknown) => e instanceof ConfigError && e.code === "CONFIG_INVALID",
    );
  }));
