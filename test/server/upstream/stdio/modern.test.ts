/**
 * The modern pool behind the relay (plain HTTP, the v2 test server as the child): a child that
 * dies, a message over upstream.maxMessageSize, a child that hangs, log messages with no one
 * request to go to, a client that accepts JSON only, two children sharing the load, and
 * cancellation by notification under a client key.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { IncomingMessage } from "node:http";
import { ConfigError, loadConfig } from "../../../../proxy/server/config.js";
import { clientKeyOf } from "../../../../proxy/server/upstream/stdio/modern/endpoint.js";
import { ModernPool } from "../../../../proxy/server/upstream/stdio/modern/pool.js";
import { Inflight, type Sink } from "../../../../proxy/server/upstream/stdio/modern/member.js";
import { noHooks } from "../../../../proxy/server/hooks.js";
import { SERVER_JS } from "../../../support/mcp2/spawn.js";
import { tempDir, waitFor, within } from "../../../support/wait.js";
import { childPids, type Proxy as Relay, scoped, silent, startProxy } from "./harness.js";

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const CMD = [process.execPath, SERVER_JS, "--stdio", "--era", "dual"];
/** The command with a tag of its own (the server ignores the flag), so each test finds its own children. */
const tagged = (tag: string): string[] => [...CMD, "--tag", `modern-test-${tag}`];
const mine = (tag: string): number[] => childPids(`modern-test-${tag}`);

interface Answer {
  status: number;
  type: string;
  messages: Array<Record<string, unknown>>;
}

/** A modern tools/call over plain HTTP; `meta` adds to the envelope. */
async function call(
  p: Relay,
  id: number,
  name: string,
  args: Record<string, unknown>,
  meta: Record<string, unknown> = {},
  accept = "application/json, text/event-stream",
  signal?: AbortSignal,
): Promise<Answer> {
  const r = await fetch(`${p.base}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": name },
    body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: { ...META, ...meta } } }),
    signal: signal ?? AbortSignal.timeout(20_000),
  });
  const type = r.headers.get("content-type") ?? "";
  const text = await r.text();
  const messages = type.startsWith("text/event-stream")
    ? text
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
    : [JSON.parse(text) as Record<string, unknown>];
  return { status: r.status, type, messages };
}

const errorOf = (a: Answer) => a.messages.at(-1)?.error as { code: number; message: string } | undefined;
const textOf = (a: Answer) => JSON.stringify(a.messages.at(-1)?.result ?? a.messages.at(-1));

describe("the modern pool behind the relay", { timeout: 120_000, concurrency: true }, () => {
  it("a child that dies: the requests it held get an error naming the exit, and it is restarted", () =>
    scoped(async (defer) => {
      const p = await startProxy(defer, { command: tagged("dies") });
      assert.match(textOf(await call(p, 1, "echo", { message: "first" })), /first/);
      const [pid] = mine("dies");
      assert.ok(pid !== undefined && p.up.modern().children === 1);
      const held = call(p, 2, "quiet", { ms: 30_000 });
      await new Promise((r) => setTimeout(r, 200));
      process.kill(pid, "SIGKILL");
      const a = await within(held, 10_000, "the held request's answer");
      assert.equal(a.status, 200);
      assert.equal(a.messages.at(-1)?.id, 2);
      assert.deepEqual(errorOf(a), { code: -32000, message: "MCP server process exited (signal SIGKILL)" });
      await waitFor(() => p.up.modern().children === 1 && mine("dies").some((x) => x !== pid), 10_000, "the restarted child");
      assert.match(textOf(await call(p, 3, "echo", { message: "after" })), /after/);
    }));

  it("an answer over upstream.maxMessageSize: that request gets an error naming the limit, the child answers the next", () =>
    scoped(async (defer) => {
      const p = await startProxy(defer, { command: tagged("big"), maxMessageSize: 1024 * 1024 });
      const big = await call(p, 1, "big", { mb: 2 });
      assert.equal(big.messages.at(-1)?.id, 1);
      assert.match(errorOf(big)?.message ?? "", /upstream\.maxMessageSize \(1 MiB\)/);
      const pids = mine("big");
      assert.equal(pids.length, 1);
      assert.match(textOf(await call(p, 2, "big", { mb: 0.5 })), /x{1000}/);
      assert.deepEqual(mine("big"), pids, "the same child");
    }));

  it("a child that sends nothing while requests wait is replaced; they get an error", () =>
    scoped(async (defer) => {
      // The bound covers the child's start too: well above it, far below the quiet call.
      const p = await startProxy(defer, { command: tagged("hang"), requestIdleMs: 6_000 });
      assert.match(textOf(await call(p, 1, "echo", { message: "up" })), /up/);
      const [pid] = mine("hang");
      const a = await call(p, 2, "quiet", { ms: 30_000 });
      assert.match(errorOf(a)?.message ?? "", /sent nothing for 6000 ms/);
      await waitFor(() => !mine("hang").includes(pid!) && p.up.modern().children === 1, 10_000, "the replacement");
      assert.match(textOf(await call(p, 3, "echo", { message: "again" })), /again/);
    }));

  it("notifications/message goes only to the one request that asked; with two asking it is dropped and counted", () =>
    scoped(async (defer) => {
      const p = await startProxy(defer, { command: tagged("logs") });
      const logs = { "io.modelcontextprotocol/logLevel": "debug" };
      // The first request stays in flight (30 s of progress) until the test is done with it.
      const ac = new AbortController();
      defer(() => ac.abort());
      const first = await fetch(`${p.base}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "progress" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "progress", arguments: { steps: 300, ms: 100 }, _meta: { ...META, ...logs, progressToken: 1 } } }),
        signal: ac.signal,
      });
      // Its log message is the first thing on its stream; only then does a second request ask for logs.
      const reader = first.body!.getReader();
      let text = "";
      while (!text.includes("notifications/progress")) {
        const { done, value } = await within(reader.read(), 10_000, "the first request's stream");
        if (done) break;
        text += Buffer.from(value).toString("utf8");
      }
      const b = await call(p, 1, "progress", { steps: 1, ms: 10 }, logs);
      ac.abort();
      assert.equal(text.match(/notifications\/message/g)?.length, 1, "its own, sent while it was the only one asking");
      assert.equal(b.messages.filter((m) => m.method === "notifications/message").length, 0, "sent while two asked: dropped");
      assert.equal(p.up.modern().droppedLogs, 1);
    }));

  it("a client that accepts only JSON gets the answer as JSON, its notifications dropped", () =>
    scoped(async (defer) => {
      const p = await startProxy(defer, { command: tagged("json") });
      const a = await call(p, 9, "progress", { steps: 2, ms: 20 }, { progressToken: "t" }, "application/json");
      assert.equal(a.type, "application/json");
      assert.equal(a.messages.length, 1);
      assert.match(textOf(a), /progress done: 2/);
      const none = await fetch(`${p.base}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/html", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }),
      });
      assert.equal(none.status, 406);
      await none.body?.cancel();
    }));

  it("modernChildren: 2 — both start with the first request, load is spread, one dying fails only what it held", () =>
    scoped(async (defer) => {
      const p = await startProxy(defer, { command: tagged("two"), modernChildren: 2 });
      assert.match(textOf(await call(p, 1, "echo", { message: "x" })), /x/);
      await waitFor(() => p.up.modern().children === 2, 10_000, "both children");
      const pids = mine("two");
      assert.equal(pids.length, 2);
      const ac = new AbortController();
      const held = [call(p, 1, "quiet", { ms: 30_000 }, {}, undefined, ac.signal).catch((e: Error) => e), call(p, 1, "quiet", { ms: 30_000 }, {}, undefined, ac.signal).catch((e: Error) => e)];
      await new Promise((r) => setTimeout(r, 300));
      process.kill(pids[0]!, "SIGKILL");
      const failed = await within(Promise.race(held), 10_000, "one answer");
      assert.ok(!(failed instanceof Error) && /exited/.test(errorOf(failed)?.message ?? ""), "the dead child's request got an error");
      ac.abort();
      const other = await within(Promise.all(held), 10_000, "the other one, aborted");
      assert.ok(
        other.some((x) => x instanceof Error),
        "the other request was still running on the other child",
      );
    }));
});

describe("cancellation by notification, under a client key", { timeout: 60_000 }, () => {
  it("cancels the one request of that id under that key, never another key's, never an ambiguous one", async () => {
    const log = join(tempDir("amcp-modern-cancel-"), "cancel.log");
    writeFileSync(log, "");
    const pool = new ModernPool({
      size: 1,
      command: { executable: CMD[0]!, args: CMD.slice(1), env: { PATH: process.env.PATH ?? "", MCP2_CANCEL_LOG: log } },
      requestIdleMs: 60_000,
      hooks: noHooks,
      log: silent,
    });
    const sinks: Array<Sink & { got: unknown[]; ended: boolean }> = [];
    const sink = () => {
      const s = { got: [] as unknown[], ended: false, open: true, send: (m: unknown) => void s.got.push(m), end: () => void (s.ended = true) };
      sinks.push(s);
      return s;
    };
    const wait = (id: number) => ({ jsonrpc: "2.0" as const, id, method: "tools/call", params: { name: "wait_cancel", arguments: { ms: 30_000 }, _meta: META } });
    const lines = () => readFileSync(log, "utf8").split("\n").filter(Boolean);
    try {
      const a = (await pool.submit("cert:a", wait(1), sink())) as Inflight;
      const b1 = (await pool.submit("cert:b", wait(2), sink())) as Inflight;
      const b2 = (await pool.submit("cert:b", wait(2), sink())) as Inflight;
      assert.ok(a instanceof Inflight && b1 instanceof Inflight && b2 instanceof Inflight);
      assert.notEqual(b1.rid, b2.rid, "pool-unique ids for the same client id");
      await waitFor(() => lines().filter((l) => l.startsWith("started")).length === 3, 10_000, "three calls under way");
      assert.equal(pool.cancelByClient("cert:b", { requestId: 1 }), false, "b cannot cancel a's request 1");
      assert.equal(pool.cancelByClient("cert:b", { requestId: 2 }), false, "ambiguous under b: left to the streams");
      assert.equal(pool.cancelByClient("cert:a", { requestId: 1, reason: "user" }), true);
      assert.ok(sinks[0]!.ended);
      await waitFor(() => lines().includes(`cancelled ${a.rid}`), 5_000, "the child saw a's cancellation");
      pool.cancel(b1, "stream closed");
      assert.equal(pool.cancelByClient("cert:b", { requestId: 2 }), true, "now unambiguous");
      await waitFor(() => lines().includes(`cancelled ${b1.rid}`) && lines().includes(`cancelled ${b2.rid}`), 5_000, "both of b's");
      assert.deepEqual(
        sinks.map((s) => s.got.length),
        [0, 0, 0],
        "nothing delivered for a cancelled request",
      );
    } finally {
      await pool.close();
    }
  });
});

describe("the client key", () => {
  it("a client certificate is one key on any connection; without one, each connection is its own", () => {
    const req = (socket: object) => ({ socket }) as unknown as IncomingMessage;
    const withCert = (der: string) => ({ getPeerCertificate: () => ({ raw: Buffer.from(der) }) });
    const plainTls = { getPeerCertificate: () => ({}) };
    const a1 = withCert("cert-a");
    assert.equal(clientKeyOf(req(a1)), clientKeyOf(req(withCert("cert-a"))));
    assert.match(clientKeyOf(req(a1)), /^cert:[0-9a-f]{64}$/);
    assert.notEqual(clientKeyOf(req(a1)), clientKeyOf(req(withCert("cert-b"))));
    assert.notEqual(clientKeyOf(req(plainTls)), clientKeyOf(req({ getPeerCertificate: () => ({}) })));
    assert.equal(clientKeyOf(req(plainTls)), clientKeyOf(req(plainTls)), "the same connection");
    assert.match(clientKeyOf(req({})), /^conn:\d+$/, "plain HTTP");
  });
});

describe("upstream.modernChildren", () => {
  const sets = (...more: [string, string][]): [string, string][] => [["attestation.provider", "dev"], ...more];
  it("defaults to 1, takes 1..64, and only applies to a command", async () => {
    const stdio = ["upstream.command", "[node, server.js]"] as [string, string];
    const one = await loadConfig({ env: {}, sets: sets(stdio) });
    assert.equal(one.upstream.kind === "stdio" && one.upstream.modernChildren, 1);
    const four = await loadConfig({ env: {}, sets: sets(stdio, ["upstream.modernChildren", "4"]) });
    assert.equal(four.upstream.kind === "stdio" && four.upstream.modernChildren, 4);
    await assert.rejects(loadConfig({ env: {}, sets: sets(stdio, ["upstream.modernChildren", "0"]) }), (e: unknown) => e instanceof ConfigError && /upstream\.modernChildren/.test(e.message));
    await assert.rejects(loadConfig({ env: {}, sets: sets(["upstream.url", "http://127.0.0.1:9"], ["upstream.modernChildren", "2"]) }), /only applies to upstream\.command/);
  });
});
