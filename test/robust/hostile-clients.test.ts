/**
 * Slow and hostile clients against a spawned `serve`: slowloris connections cut at
 * limits.headersTimeout without hurting live requests, malformed requests answered 400 / 413 / 431
 * before anything reaches the upstream, and TLS garbage and truncated handshakes counted, dropped,
 * and cut at limits.handshakeTimeout, while serve keeps serving.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { createRobustUpstream } from "../support/robust-upstream.js";
import { liveLatency, slowloris } from "../support/robust-scenarios.js";
import { fdCount, fdTargets, fetchVia, metric, pinnedAgent, scrape, spawnServe, type SpawnedServe } from "../support/robust.js";
import { listen, portOf, shut } from "../support/upstream.js";
import { alive, eventually, sleep, within } from "../support/wait.js";

// Long enough that 500 TLS handshakes on a loaded two-core machine finish well within it.
const HEADERS_TIMEOUT_MS = 10_000;
const HANDSHAKE_TIMEOUT_MS = 2000;
const BODY_LIMIT = 1024;

const up = createRobustUpstream();
let serve: SpawnedServe | undefined;
before(async () => {
  await listen(up.server);
  serve = await spawnServe(
    `upstream: { url: "http://127.0.0.1:${portOf(up.server)}", bodyLimit: ${BODY_LIMIT} }\nlimits: { headersTimeout: ${HEADERS_TIMEOUT_MS}ms, handshakeTimeout: ${HANDSHAKE_TIMEOUT_MS}ms }\n`,
  );
});
after(async () => {
  await serve?.stop();
  await shut(up.server);
});

/** Sends raw bytes over a pinned TLS connection (in pieces, `gapMs` apart); the first response line and how long until the close. */
function raw(s: SpawnedServe, pieces: (string | Buffer)[], gapMs = 0): Promise<{ line: string; ms: number }> {
  return within(
    new Promise((resolve) => {
      const t0 = performance.now();
      let got = "";
      const sock = tlsConnect({ host: "127.0.0.1", port: s.port, ca: s.certPem, checkServerIdentity: () => undefined }, async () => {
        for (const p of pieces) {
          if (sock.destroyed) break;
          sock.write(p);
          if (gapMs) await sleep(gapMs);
        }
      });
      sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
      sock.on("error", () => {});
      sock.on("close", () => resolve({ line: got.split("\r\n", 1)[0] ?? "", ms: performance.now() - t0 }));
    }),
    10_000,
    "raw exchange",
  );
}

describe("slow clients", { timeout: 60_000 }, () => {
  it("500 slowloris connections: live requests all answered meanwhile; every one cut, none before limits.headersTimeout; none reaches the upstream", async () => {
    const s = serve!;
    const fdsBefore = fdCount(s.pid);
    const opts = { count: 1500, concurrency: 8, maxMs: 5000 };
    await liveLatency(s, { count: 300, concurrency: 8 }); // JIT and pools warm, not measured
    const quiet = await liveLatency(s, opts);
    const upstreamBefore = up.stats.requests;
    const attack = await slowloris(s, { count: 500, trickleMs: 1000, batch: 100 });
    const opened = performance.now();
    const openAtStart = attack.open();
    const loaded = await liveLatency(s, opts);
    const measuredFor = performance.now() - opened;
    const stillOpen = attack.open();
    const upstreamLoaded = up.stats.requests - upstreamBefore;
    try {
      assert.equal(attack.opened, 500);
      assert.equal(quiet.failures + loaded.failures, 0);
      assert.equal(loaded.requests, opts.count);
      // The loaded run started while the slowloris connections were held (how long they stayed
      // held during it depends on the machine's speed, so it is reported, not asserted).
      assert.ok(openAtStart >= 450, `only ${openAtStart} slowloris connections were open when the loaded run started`);
      assert.ok(await eventually(() => attack.open() === 0, HEADERS_TIMEOUT_MS + 3000), `${attack.open()} slowloris connections still open`);
      // Latency under attack is a figure, not a verdict: `npm run soak` compares it with the quiet runs.
      console.log(
        `slowloris: ${attack.opened} open (${stillOpen} still open after the loaded run of ${Math.round(measuredFor)} ms); live p50/p99 ms: without ${quiet.p50.toFixed(2)}/${quiet.p99.toFixed(2)}, with ${loaded.p50.toFixed(2)}/${loaded.p99.toFixed(2)} (${loaded.requests} requests each)`,
      );
      const cut = [...attack.cutAfter].sort((a, b) => a - b);
      console.log(
        `slowloris: cut after ${Math.round(cut[0]!)}–${Math.round(cut[cut.length - 1]!)} ms (headersTimeout ${HEADERS_TIMEOUT_MS} ms); answers seen: ${[...new Set(attack.answers)].join(" | ")}`,
      );
      assert.ok(cut[0]! >= HEADERS_TIMEOUT_MS - 100, `cut too early: ${cut[0]} ms`);
      // The loaded run's requests and its connections' warm-up requests, and not one more.
      assert.equal(upstreamLoaded, opts.count + opts.concurrency, "no slowloris request reached the upstream");
      up.server.closeIdleConnections();
      assert.ok(await eventually(() => fdCount(s.pid) <= fdsBefore, 5000), `fds ${fdsBefore} before, ${fdCount(s.pid)} after`);
      console.log(`slowloris: serve fds ${fdsBefore} before, ${fdCount(s.pid)} after`);
    } finally {
      attack.close();
    }
    // serve's keep-alive pool to the upstream is not a leak: the upstream closes it.
    up.server.closeIdleConnections();
    assert.ok(await eventually(() => fdCount(s.pid) <= fdsBefore, 5000), `fds ${fdsBefore} before, ${fdCount(s.pid)} after:\n${fdTargets(s.pid).slice(0, 40).join("\n")}`);
  });
});

describe("malformed requests", { timeout: 30_000 }, () => {
  it("bad request line → 400, 64 KB of headers → 431, broken chunked → 400, a body over upstream.bodyLimit → 413: nothing reaches the upstream", async () => {
    const s = serve!;
    const before = { ...up.stats };
    const host = "Host: robust\r\n";
    const cases: [string, (string | Buffer)[], RegExp][] = [
      ["bad request line", ["GET /fast HTTP/1.1 and more\r\n" + host + "\r\n"], /^HTTP\/1\.1 400 /],
      ["not HTTP at all", ["\x16\x03\x01garbage\r\n\r\n"], /^HTTP\/1\.1 400 /],
      ["64 KB of headers", [`GET /fast HTTP/1.1\r\n${host}${Array.from({ length: 64 }, (_, i) => `X-Big-${i}: ${"b".repeat(1000)}\r\n`).join("")}\r\n`], /^HTTP\/1\.1 431 /],
      ["64 KB of headers, trickled", [`GET /fast HTTP/1.1\r\n${host}`, ...Array.from({ length: 64 }, (_, i) => `X-Big-${i}: ${"b".repeat(1000)}\r\n`), "\r\n"], /^HTTP\/1\.1 431 /],
      ["broken chunked encoding", [`POST /echo HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`], /^HTTP\/1\.1 400 /],
      ["Content-Length and chunked", [`POST /echo HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`], /^HTTP\/1\.1 400 /],
      ["declared body over the limit", [`POST /echo HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: ${BODY_LIMIT * 4}\r\n\r\n`, "x".repeat(BODY_LIMIT * 4)], /^HTTP\/1\.1 413 /],
    ];
    const seen: string[] = [];
    for (const [name, pieces, want] of cases) {
      const r = await raw(s, pieces, pieces.length > 2 ? 5 : 0);
      seen.push(`${name}: ${r.line}`);
      assert.match(r.line, want, name);
    }
    await sleep(200);
    console.log(`malformed: ${seen.join("; ")}; upstream requests +${up.stats.requests - before.requests}, bytes +${up.stats.bytes - before.bytes}`);
    assert.equal(up.stats.requests, before.requests, "no request reached the upstream");
    assert.equal(up.stats.bytes, before.bytes, "no byte reached the upstream");
    assert.ok(alive(s.pid));
    const agent = pinnedAgent(s.certPem);
    assert.equal((await fetchVia(agent, s.port, "/fast")).status, 200);
    agent.destroy();
  });

  it("bodies that go bad after they started streaming (chunked over the limit, a broken chunk later): 413 / 400 and the upstream never gets a complete request", async () => {
    const s = serve!;
    const before = { ...up.stats };
    const chunk = (n: number) => `${n.toString(16)}\r\n${"y".repeat(n)}\r\n`;
    const over = await raw(s, [`POST /echo HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n`, chunk(600), chunk(600), chunk(600), "0\r\n\r\n"], 20);
    const broken = await raw(s, [`POST /echo HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n`, chunk(100), "zz\r\nnot a chunk\r\n"], 20);
    await sleep(200);
    console.log(
      `late faults: over the limit → ${over.line}; broken later → ${broken.line}; upstream requests started +${up.stats.requests - before.requests}, completed +${up.stats.completed - before.completed}`,
    );
    assert.match(over.line, /^HTTP\/1\.1 413 /);
    assert.match(broken.line, /^HTTP\/1\.1 400 /);
    // Streaming: the head went upstream before the body went bad; the body never completes there.
    assert.equal(up.stats.completed, before.completed);
  });
});

/** The first bytes a TLS client sends: a real ClientHello. */
async function clientHello(): Promise<Buffer> {
  const catcher = net.createServer();
  await listen(catcher);
  const got = new Promise<Buffer>((r) => catcher.once("connection", (c) => c.once("data", (d: Buffer) => (r(d), c.destroy()))));
  const t = tlsConnect({ host: "127.0.0.1", port: portOf(catcher), rejectUnauthorized: false });
  t.on("error", () => {});
  const hello = await within(got, 5000, "ClientHello");
  t.destroy();
  await new Promise<void>((r) => catcher.close(() => r()));
  return hello;
}

describe("TLS garbage and truncated handshakes", { timeout: 30_000 }, () => {
  it("are counted as failed handshakes and dropped; a truncated one left open is cut at limits.handshakeTimeout; serve keeps serving", async () => {
    const s = serve!;
    const failedBefore = metric(await scrape(s.metricsPort), "attestable_mcp_tls_handshakes_total", 'result="failed"');
    const hello = await clientHello();
    const tcp = (write: Buffer | null, thenClose: boolean) =>
      within(
        new Promise<number>((resolve) => {
          const t0 = performance.now();
          const c = net.connect({ host: "127.0.0.1", port: s.port }, () => {
            if (write) c.write(write);
            if (thenClose) setTimeout(() => c.destroy(), 50);
          });
          c.resume();
          c.on("error", () => {});
          c.on("close", () => resolve(performance.now() - t0));
        }),
        HANDSHAKE_TIMEOUT_MS + 5000,
        "raw TCP connection",
      );
    // Random bytes, but not starting like a TLS record header (a valid content type makes the
    // server wait for the rest of the record, which the held connections below cover).
    const noise = (): Buffer => Buffer.concat([Buffer.from([0x00]), randomBytes(1023)]);
    const garbage = await Promise.all(Array.from({ length: 20 }, () => tcp(noise(), false)));
    const truncatedClosed = await Promise.all(Array.from({ length: 10 }, () => tcp(hello.subarray(0, Math.floor(hello.length / 2)), true)));
    const held = await Promise.all([...Array.from({ length: 10 }, () => tcp(hello.subarray(0, Math.floor(hello.length / 2)), false)), ...Array.from({ length: 10 }, () => tcp(null, false))]);
    const failed = (await eventually(async () => metric(await scrape(s.metricsPort), "attestable_mcp_tls_handshakes_total", 'result="failed"') - failedBefore >= 50, 3000))
      ? 50
      : metric(await scrape(s.metricsPort), "attestable_mcp_tls_handshakes_total", 'result="failed"') - failedBefore;
    console.log(
      `TLS faults: garbage dropped after ≤${Math.round(Math.max(...garbage))} ms; half ClientHello + close: ${truncatedClosed.length}; held (half hello / nothing) cut after ${Math.round(Math.min(...held))}–${Math.round(Math.max(...held))} ms; failed handshakes counted +${failed}`,
    );
    for (const ms of held) assert.ok(ms >= HANDSHAKE_TIMEOUT_MS - 100, `held handshake cut after ${ms} ms, before limits.handshakeTimeout`);
    assert.equal(failed, 50, "every garbage, truncated and stalled handshake counted");
    const agent = pinnedAgent(s.certPem);
    assert.equal((await fetchVia(agent, s.port, "/fast")).status, 200);
    agent.destroy();
    assert.ok(alive(s.pid));
  });
});

describe("the limits are configuration", () => {
  it("limits.* take durations and sizes, and refuse what cannot work, naming the key", async () => {
    const { loadConfig } = await import("../../proxy/server/config.js");
    const base: [string, string][] = [
      ["attestation.provider", "dev"],
      ["upstream.url", '"http://127.0.0.1:1"'],
    ];
    const c = await loadConfig({ sets: [...base, ["limits.headersTimeout", "2s"], ["limits.handshakeTimeout", "500ms"], ["limits.maxHeaderSize", "8KiB"]] });
    // The connection share defaults to half the cap.
    assert.deepEqual(c.limits, { headersTimeoutMs: 2000, handshakeTimeoutMs: 500, maxHeaderSize: 8192, maxHeaders: 100, maxConnections: 1500, maxConnectionsPerClient: 750 });
    for (const [key, value] of [
      ["limits.maxHeaderSize", "512"],
      ["limits.maxHeaderSize", "2MiB"],
      ["limits.headersTimeout", "soon"],
      ["limits.handshakeTimeout", "0s"],
      ["limits.maxHeaders", "0"],
      ["limits.maxConnections", "0"],
      ["limits.maxConnectionsPerClient", "2000"],
    ] as const) {
      await assert.rejects(loadConfig({ sets: [...base, [key, value]] }), (e: Error & { code?: string }) => e.code === "CONFIG_INVALID" && e.message.includes(key), `${key}=${value}`);
    }
  });
});
