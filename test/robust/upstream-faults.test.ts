/**
 * Upstream faults through a spawned `serve`: the HTTP upstream SIGKILLed mid-stream, an upstream
 * that accepts and never answers, a stream that stalls, a stdio child that exits and one that hangs
 * (ignoring SIGTERM). Each time the client gets a clear outcome within the configured bound, serve
 * stays up, the next exchange works, and serve's file descriptors and children are back to what
 * they were.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { STDIO_SCRIPT, childrenOf, fdCount, fdTargets, fetchVia, metric, pinnedAgent, readSse, scrape, spawnServe, spawnUpstream, type SpawnedServe } from "../support/robust.js";
import { freePort, listen, portOf } from "../support/upstream.js";
import { alive, eventually, sleep } from "../support/wait.js";

const HEADERS_TIMEOUT_MS = 1000;
const IDLE_TIMEOUT_MS = 2000;
const limits = `  headersTimeout: ${HEADERS_TIMEOUT_MS}ms\n  idleTimeout: ${IDLE_TIMEOUT_MS}ms\n`;

/** serve's descriptors return to `before` once our connections are gone (bounded wait). */
async function noFdLeak(s: SpawnedServe, before: number, what: string): Promise<number> {
  const ok = await eventually(() => fdCount(s.pid) <= before, 5000);
  const now = fdCount(s.pid);
  assert.ok(ok, `${what}: serve had ${before} fds before, ${now} after:\n${fdTargets(s.pid).join("\n")}`);
  return now;
}

describe("HTTP upstream faults", { timeout: 60_000 }, () => {
  let serve: SpawnedServe | undefined;
  let upstream: Awaited<ReturnType<typeof spawnUpstream>> | undefined;
  let upPort = 0;
  before(async () => {
    upPort = await freePort();
    upstream = await spawnUpstream(upPort);
    serve = await spawnServe(`upstream:\n  url: "http://127.0.0.1:${upPort}"\n${limits}`);
  });
  after(async () => {
    await serve?.stop();
    await upstream?.kill();
  });

  it("upstream SIGKILLed mid-stream: every stream is cut (never a clean end), 502 meanwhile, the restarted upstream serves the next one, no fd leak", async () => {
    const s = serve!;
    const agent = pinnedAgent(s.certPem);
    assert.equal((await fetchVia(agent, s.port, "/fast")).status, 200);
    agent.destroy();
    const fdsBefore = await noFdLeak(s, fdCount(s.pid) + 1, "warm-up");

    const streams = pinnedAgent(s.certPem);
    let events = 0;
    const reading = Array.from({ length: 10 }, (_, j) => readSse(streams, s.port, `/sse?n=0&every=20&k=kill${j}`, () => events++));
    assert.ok(await eventually(() => events >= 100, 5000), `events before the kill: ${events}`);
    const killedAt = performance.now();
    await upstream!.kill("SIGKILL");
    const outcomes = await Promise.all(reading);
    const cutMs = Math.max(...outcomes.map((o) => o.at - killedAt));
    console.log(`upstream killed: ${outcomes.length} streams cut within ${Math.round(cutMs)} ms (${outcomes.map((o) => o.how).join(",")}), ${events} events before`);
    for (const o of outcomes) {
      assert.equal(o.how, "aborted", "a stream whose upstream died must not look complete");
      assert.deepEqual(
        o.seen,
        o.seen.map((_, i) => i),
        "events in order, none twice",
      );
    }
    assert.ok(cutMs < 1000, `cut after ${cutMs} ms`);
    streams.destroy();

    const down = pinnedAgent(s.certPem);
    const bad = await fetchVia(down, s.port, "/fast");
    assert.equal(bad.status, 502);
    assert.ok(bad.ms < HEADERS_TIMEOUT_MS, `502 after ${bad.ms} ms`);
    down.destroy();

    upstream = await spawnUpstream(upPort);
    const again = pinnedAgent(s.certPem);
    const ok = await fetchVia(again, s.port, "/fast");
    assert.equal(ok.status, 200);
    const fresh = await readSse(again, s.port, "/sse?n=20&every=5&k=after");
    assert.equal(fresh.how, "end");
    assert.equal(fresh.seen.length, 20);
    again.destroy();
    const fdsAfter = await noFdLeak(s, fdsBefore, "after the kill");
    const m = await scrape(s.metricsPort);
    assert.ok(metric(m, "attestable_mcp_upstream_errors_total", 'kind="reset"') >= 10);
    assert.ok(metric(m, "attestable_mcp_upstream_errors_total", 'kind="connect"') >= 1);
    assert.equal(metric(m, "attestable_mcp_open_streams", 'kind="sse"'), 0);
    assert.ok(alive(s.pid));
    console.log(`upstream killed: serve fds ${fdsBefore} before, ${fdsAfter} after`);
  });

  it("a stream that stalls is closed at upstream.idleTimeout", async () => {
    const s = serve!;
    const agent = pinnedAgent(s.certPem);
    let lastEvent = 0;
    const o = await readSse(agent, s.port, "/sse?n=3&every=10&hold=1&k=stall", () => (lastEvent = performance.now()));
    agent.destroy();
    const after = o.at - lastEvent;
    console.log(`stalled stream: ${o.seen.length} events, then cut (${o.how}) ${Math.round(after)} ms after the last byte`);
    assert.equal(o.seen.length, 3);
    assert.equal(o.how, "aborted");
    assert.ok(after >= IDLE_TIMEOUT_MS - 100, `cut ${after} ms after the last event, before the idle timeout`);
  });
});

describe("an upstream that accepts and never answers", { timeout: 30_000 }, () => {
  const held = new Set<net.Socket>();
  const mute = net.createServer((c) => {
    held.add(c);
    // Read (and drop) what serve sends, so that its FIN is seen.
    c.resume();
    c.on("error", () => {});
    c.on("close", () => held.delete(c));
  });
  let serve: SpawnedServe | undefined;
  before(async () => {
    await listen(mute);
    serve = await spawnServe(`upstream:\n  url: "http://127.0.0.1:${portOf(mute)}"\n${limits}`);
  });
  after(async () => {
    await serve?.stop();
    for (const c of held) c.destroy();
    await new Promise<void>((r) => mute.close(() => r()));
  });

  it("→ 504 within upstream.headersTimeout; serve lets go of the upstream sockets; serve stays up", async () => {
    const s = serve!;
    const fdsBefore = fdCount(s.pid);
    const agent = pinnedAgent(s.certPem);
    const answers = await Promise.all(Array.from({ length: 10 }, () => fetchVia(agent, s.port, "/anything")));
    agent.destroy();
    const ms = answers.map((a) => Math.round(a.ms));
    console.log(`mute upstream: ${answers.map((a) => a.status).join(",")} after ${Math.min(...ms)}–${Math.max(...ms)} ms`);
    for (const a of answers) {
      assert.equal(a.status, 504);
      assert.ok(a.ms >= HEADERS_TIMEOUT_MS - 50, `504 after ${a.ms} ms, before the headers timeout`);
    }
    assert.ok(await eventually(() => held.size === 0, 3000), `serve still holds ${held.size} upstream sockets`);
    await noFdLeak(s, fdsBefore, "mute upstream");
    const m = await scrape(s.metricsPort);
    assert.equal(metric(m, "attestable_mcp_upstream_errors_total", 'kind="timeout"'), 10);
    assert.ok(alive(s.pid));
  });
});

/** A Streamable HTTP exchange with the stdio upstream: the JSON-RPC answers in the body (JSON or SSE). */
function messagesOf(body: string): { id?: number; result?: unknown; error?: { message: string } }[] {
  const t = body.trim();
  if (t.startsWith("{") || t.startsWith("[")) return ([] as unknown[]).concat(JSON.parse(t)) as never;
  return t
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => JSON.parse(l.slice(6)) as never);
}

describe("stdio upstream faults", { timeout: 60_000 }, () => {
  let serve: SpawnedServe | undefined;
  before(async () => {
    serve = await spawnServe(`upstream:\n  command: ["${process.execPath}", "${STDIO_SCRIPT}"]\n${limits}`);
  });
  after(() => serve?.stop());

  const H = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  async function session(agent: ReturnType<typeof pinnedAgent>, port: number): Promise<Record<string, string>> {
    const init = await fetchVia(agent, port, "/mcp", {
      method: "POST",
      headers: H,
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "robust", version: "1" } } }),
    });
    assert.equal(init.status, 200, init.body);
    const sid = String(init.headers["mcp-session-id"]);
    const h = { ...H, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" };
    await fetchVia(agent, port, "/mcp", { method: "POST", headers: h, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
    return h;
  }
  const call = (agent: ReturnType<typeof pinnedAgent>, port: number, h: Record<string, string>, name: string, timeoutMs = 15_000) =>
    fetchVia(agent, port, "/mcp", { method: "POST", headers: h, timeoutMs, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name, arguments: { message: "hi" } } }) });

  it("a child that exits mid-request: the request is answered with an error at once, the session is gone, the next session works, no child or fd left", async () => {
    const s = serve!;
    const fdsBefore = fdCount(s.pid);
    assert.deepEqual(childrenOf(s.pid), []);
    const agent = pinnedAgent(s.certPem);
    const h = await session(agent, s.port);
    assert.equal(childrenOf(s.pid).length, 1);
    const r = await call(agent, s.port, h, "exit");
    const msgs = messagesOf(r.body);
    console.log(`stdio child exit: ${r.status} after ${Math.round(r.ms)} ms: ${msgs[0]?.error?.message}`);
    assert.match(msgs[0]?.error?.message ?? "", /exited/);
    assert.ok(r.ms < 3000);
    assert.equal((await call(agent, s.port, h, "echo")).status, 404);
    const h2 = await session(agent, s.port);
    assert.match((await call(agent, s.port, h2, "echo")).body, /hi/);
    await fetchVia(agent, s.port, "/mcp", { method: "DELETE", headers: h2 });
    agent.destroy();
    assert.ok(await eventually(() => childrenOf(s.pid).length === 0, 5000), `children left: ${childrenOf(s.pid).join(",")}`);
    await noFdLeak(s, fdsBefore, "stdio exit");
  });

  it("a child that hangs (and ignores SIGTERM): the request is answered with an error within upstream.idleTimeout, the child is killed, the next session works", async () => {
    const s = serve!;
    const fdsBefore = fdCount(s.pid);
    const agent = pinnedAgent(s.certPem);
    const h = await session(agent, s.port);
    const [pid] = childrenOf(s.pid);
    assert.ok(pid);
    const r = await call(agent, s.port, h, "hang", IDLE_TIMEOUT_MS + 5000);
    const msgs = messagesOf(r.body);
    console.log(`stdio child hang: ${r.status} after ${Math.round(r.ms)} ms: ${msgs[0]?.error?.message}`);
    assert.ok(msgs[0]?.error, `an error answer: ${r.body}`);
    assert.ok(r.ms >= IDLE_TIMEOUT_MS - 100, `answered after ${r.ms} ms, before the idle timeout`);
    const h2 = await session(agent, s.port);
    assert.match((await call(agent, s.port, h2, "echo")).body, /hi/);
    await fetchVia(agent, s.port, "/mcp", { method: "DELETE", headers: h2 });
    agent.destroy();
    // SIGTERM is ignored: the kill escalates to SIGKILL after its grace.
    assert.ok(await eventually(() => !alive(pid!) || childrenOf(s.pid).length === 0, 6000), `hung child ${pid} still there`);
    assert.ok(await eventually(() => childrenOf(s.pid).length === 0, 5000), `children left: ${childrenOf(s.pid).join(",")}`);
    await noFdLeak(s, fdsBefore, "stdio hang");
    const m = await scrape(s.metricsPort);
    assert.ok(metric(m, "attestable_mcp_upstream_errors_total", 'kind="timeout"') >= 1);
    assert.ok(alive(s.pid));
    await sleep(0);
  });
});
