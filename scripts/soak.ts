/**
 * `npm run soak`: the robustness scenarios of test/robust/ run long, printing figures instead of
 * asserting them (it exits 1 if an invariant broke: an event lost, duplicated or out of order, a
 * leaked descriptor or child, a wrong status, a bad exit). Loopback only; every loop bounded.
 *
 *   node dist/scripts/soak.js [--stream-seconds 60] [--waves 10] [--cycles 20] [--fuzz-inputs 120000]
 */
import { parseArgs } from "node:util";
import { createRobustUpstream } from "../test/support/robust-upstream.js";
import { liveLatency, slowloris, streamScenario } from "../test/support/robust-scenarios.js";
import { STDIO_SCRIPT, childrenOf, fdCount, fetchVia, pinnedAgent, readSse, spawnServe, spawnUpstream, type Answer } from "../test/support/robust.js";
import { freePort, listen, portOf, shut } from "../test/support/upstream.js";
import { eventually, sleep } from "../test/support/wait.js";
import { formatReport, runVerifierFuzz } from "../test/support/verifier-fuzz.js";

const { values } = parseArgs({
  options: {
    "stream-seconds": { type: "string", default: "60" },
    streams: { type: "string", default: "200" },
    waves: { type: "string", default: "10" },
    cycles: { type: "string", default: "20" },
    "fuzz-inputs": { type: "string", default: "120000" },
  },
});
const STREAM_SECONDS = Number(values["stream-seconds"]);
const STREAMS = Number(values.streams);
const WAVES = Number(values.waves);
const CYCLES = Number(values.cycles);
const FUZZ_INPUTS = Number(values["fuzz-inputs"]);

const broken: string[] = [];
function check(ok: boolean, what: string): void {
  if (!ok) broken.push(what);
}
const say = (line: string): void => void process.stdout.write(line + "\n");

async function streams(): Promise<void> {
  const up = createRobustUpstream();
  await listen(up.server);
  const s = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\n`);
  try {
    const fds = fdCount(s.pid);
    const f = await streamScenario(s, up.stats, { streams: STREAMS, seconds: STREAM_SECONDS, everyMs: 50, tag: "soak" });
    up.server.closeIdleConnections();
    await eventually(() => fdCount(s.pid) <= fds, 5000);
    say(
      `streams      ${f.streams} SSE streams × ${STREAM_SECONDS} s: ${f.intact}/${f.streams} intact, ${f.received} events received of ${f.sent} sent (${f.eventsPerStream}/stream), ${(f.ms / 1000).toFixed(1)} s; serve fds ${fds} → ${fdCount(s.pid)}`,
    );
    check(f.intact === f.streams && f.received === f.sent && f.sent === f.streams * f.eventsPerStream, `streams: ${f.problems.join("; ")}`);
    check(fdCount(s.pid) <= fds, "streams: descriptors left");
  } finally {
    await s.stop();
    await shut(up.server);
  }
}

async function slowlorisWaves(): Promise<void> {
  const up = createRobustUpstream();
  await listen(up.server);
  const headersTimeoutMs = 2000;
  const s = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\nlimits: { headersTimeout: ${headersTimeoutMs}ms }\n`);
  const opts = { count: 1000, concurrency: 8, maxMs: 1200 };
  try {
    const fds = fdCount(s.pid);
    await liveLatency(s, { count: 300, concurrency: 8 });
    const quiet: number[] = [];
    const loaded: number[] = [];
    let maxCut = 0;
    let minCut = Infinity;
    for (let w = 0; w < WAVES; w++) {
      quiet.push((await liveLatency(s, opts)).p99);
      const attack = await slowloris(s, { count: 500, trickleMs: 500, batch: 100 });
      const l = await liveLatency(s, opts);
      loaded.push(l.p99);
      check(l.failures === 0, `slowloris wave ${w}: ${l.failures} live requests failed`);
      const cutAll = await eventually(() => attack.open() === 0, headersTimeoutMs + 3000);
      check(cutAll, `slowloris wave ${w}: ${attack.open()} not cut`);
      for (const c of attack.cutAfter) {
        maxCut = Math.max(maxCut, c);
        minCut = Math.min(minCut, c);
      }
      attack.close();
    }
    up.server.closeIdleConnections();
    await eventually(() => fdCount(s.pid) <= fds, 5000);
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    say(
      `slowloris    ${WAVES} waves × 500 connections (headersTimeout ${headersTimeoutMs} ms): live p99 median ${med(quiet).toFixed(2)} ms without, ${med(loaded).toFixed(2)} ms with (${(med(loaded) / med(quiet)).toFixed(2)}×; per wave ${loaded.map((x) => x.toFixed(1)).join(" ")}); cut after ${Math.round(minCut)}–${Math.round(maxCut)} ms; serve fds ${fds} → ${fdCount(s.pid)}`,
    );
    check(med(loaded) <= 2 * med(quiet), "slowloris: live p99 more than 2×");
    check(fdCount(s.pid) <= fds, "slowloris: descriptors left");
  } finally {
    await s.stop();
    await shut(up.server);
  }
}

async function upstreamKills(): Promise<void> {
  const upPort = await freePort();
  let upstream = await spawnUpstream(upPort);
  const s = await spawnServe(`upstream: { url: "http://127.0.0.1:${upPort}", headersTimeout: 1s, idleTimeout: 2s }\n`);
  try {
    const warm = pinnedAgent(s.certPem);
    await fetchVia(warm, s.port, "/fast");
    warm.destroy();
    await sleep(200);
    const fds = fdCount(s.pid);
    const series: number[] = [];
    let cut = 0;
    let clean = 0;
    for (let c = 0; c < CYCLES; c++) {
      const agent = pinnedAgent(s.certPem);
      let events = 0;
      const reading = Array.from({ length: 20 }, (_, j) => readSse(agent, s.port, `/sse?n=0&every=10&k=c${c}-${j}`, () => events++));
      await eventually(() => events >= 200, 5000);
      await upstream.kill("SIGKILL");
      for (const o of await Promise.all(reading)) {
        if (o.how === "aborted") cut++;
        else clean++;
        check(
          o.seen.every((v, i) => v === i),
          `kill cycle ${c}: events out of order`,
        );
      }
      const bad = await fetchVia(agent, s.port, "/fast");
      check(bad.status === 502, `kill cycle ${c}: ${bad.status} while the upstream is down`);
      upstream = await spawnUpstream(upPort);
      const ok = await fetchVia(agent, s.port, "/fast");
      check(ok.status === 200, `kill cycle ${c}: ${ok.status} after the restart`);
      agent.destroy();
      await eventually(() => fdCount(s.pid) <= fds, 3000);
      series.push(fdCount(s.pid));
    }
    say(
      `upstream     ${CYCLES} SIGKILLs of the HTTP upstream under 20 streams each: ${cut} streams cut, ${clean} ended cleanly (must be 0); 502 while down, 200 after each restart; serve fds ${fds} → ${series.join(" ")}`,
    );
    check(clean === 0, "upstream kills: a cut stream looked complete");
    check(
      series.every((n) => n <= fds),
      "upstream kills: descriptors left",
    );
  } finally {
    await s.stop();
    await upstream.kill();
  }
}

async function stdioFaults(): Promise<void> {
  const s = await spawnServe(`upstream: { command: ["${process.execPath}", "${STDIO_SCRIPT}"], idleTimeout: 1s }\n`);
  const H = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  try {
    const fds = fdCount(s.pid);
    const agent = pinnedAgent(s.certPem);
    const outcomes: Record<string, number> = {};
    for (let c = 0; c < CYCLES; c++) {
      const init = await fetchVia(agent, s.port, "/mcp", {
        method: "POST",
        headers: H,
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "soak", version: "1" } } }),
      });
      const h = { ...H, "mcp-session-id": String(init.headers["mcp-session-id"]), "mcp-protocol-version": "2025-06-18" };
      const fault = c % 2 === 0 ? "exit" : "hang";
      const r: Answer = await fetchVia(agent, s.port, "/mcp", {
        method: "POST",
        headers: h,
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: fault, arguments: {} } }),
      });
      const answered = /"error"/.test(r.body);
      outcomes[`${fault}:${answered ? "error answer" : "no answer"}`] = (outcomes[`${fault}:${answered ? "error answer" : "no answer"}`] ?? 0) + 1;
      check(answered, `stdio ${fault} cycle ${c}: ${r.status} ${r.body.slice(0, 200)}`);
    }
    agent.destroy();
    const noChildren = await eventually(() => childrenOf(s.pid).length === 0, 8000);
    await eventually(() => fdCount(s.pid) <= fds, 3000);
    say(`stdio        ${CYCLES} sessions whose child exits or hangs (idleTimeout 1 s): ${JSON.stringify(outcomes)}; children left ${childrenOf(s.pid).length}; serve fds ${fds} → ${fdCount(s.pid)}`);
    check(noChildren, "stdio: children left");
    check(fdCount(s.pid) <= fds, "stdio: descriptors left");
  } finally {
    await s.stop();
  }
}

async function sigterm(): Promise<void> {
  const up = createRobustUpstream();
  await listen(up.server);
  const s = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\nshutdown: { drain: 10s }\n`);
  try {
    const agent = pinnedAgent(s.certPem);
    const inflight = Array.from({ length: 200 }, () => fetchVia(agent, s.port, "/slow?ms=1000").catch((e: Error) => e));
    await sleep(500);
    const t0 = performance.now();
    s.child.kill("SIGTERM");
    const results = await Promise.all(inflight);
    const exit = await s.exited;
    const ms = performance.now() - t0;
    const ok = results.filter((r) => !(r instanceof Error) && r.status === 200).length;
    say(`sigterm      200 in-flight 1 s requests: ${ok} answered 200, exit ${exit.code} ${Math.round(ms)} ms after SIGTERM (drain 10 s)`);
    check(ok === 200 && exit.code === 0, "sigterm");
    agent.destroy();
  } finally {
    await s.stop();
    await shut(up.server);
  }
}

/** The verifier under ≥100k fuzzed quotes, certificates, CBOR claims and collateral bodies. */
async function evidence(): Promise<void> {
  const n = FUZZ_INPUTS;
  const r = await runVerifierFuzz({ quotes: Math.round(n * 0.5), certificates: Math.round(n * 0.2), claims: Math.round(n * 0.05), collateral: Math.round(n * 0.25) });
  for (const line of formatReport(r).split("\n")) say(`evidence     ${line.replace(/^# /, "")}`);
  for (const f of r.findings.slice(0, 20)) say(`evidence     finding: ${f}`);
  check(r.findings.length === 0, `evidence: ${r.findings.length} findings`);
}

const t0 = Date.now();
say(`soak: Node ${process.version}, loopback; figures below, invariants checked`);
for (const [name, run] of [
  ["streams", streams],
  ["slowloris", slowlorisWaves],
  ["upstream", upstreamKills],
  ["stdio", stdioFaults],
  ["sigterm", sigterm],
  ["evidence", evidence],
] as const) {
  try {
    await run();
  } catch (e) {
    broken.push(`${name}: ${(e as Error).stack ?? e}`);
  }
}
say(`soak: ${Math.round((Date.now() - t0) / 1000)} s, ${broken.length ? `BROKEN:\n  ${broken.join("\n  ")}` : "every invariant held"}`);
process.exitCode = broken.length ? 1 : 0;
