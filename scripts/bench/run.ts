/**
 * `npm run bench` (`node dist/scripts/bench/run.js [--quick]`): the proxy beside a direct
 * connection and nginx, in one run, on loopback (issue 7).
 *
 * Brings up the upstream, nginx (TLS 1.3, one worker) and `serve` (dev attestation) as child
 * processes, measures keep-alive throughput, latency at one connection, full handshakes, SSE and
 * memory, times quote verification, prints one table and writes it with the raw figures to
 * bench/results/<ISO timestamp>.json. `--quick` shortens every phase (a smoke run, under a minute).
 * `--only attested` runs the "attested connections" phase alone (scripts/bench/attested.ts: no
 * nginx or wrk needed); `--only memory` the memory phase alone (serve, and nginx when installed).
 *
 * Every phase is bounded in count and time, a watchdog bounds the whole run, and every process
 * started here is stopped at the end: in `finally`, on SIGINT / SIGTERM / SIGHUP, and (SIGKILL,
 * synchronously) on exit.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { buildNoResumeShim, measureHandshakes } from "./handshakes.js";
import { measureRpcLatencies } from "./latency.js";
import { measureMemory } from "./memory.js";
import { Children, cpuDuring, LOOPBACK, rssMb, runSync, which } from "./proc.js";
import { buildRows, renderTable, writeJson, type Machine, type Results, type Target } from "./report.js";
import { measureSse } from "./sse.js";
import { measureAttested } from "./attested.js";
import { makeCertificate, nginxVersion, startNginx, startServe, startUpstream, type KeyType, type Nginx, type Serve } from "./targets.js";
import { measureVerify } from "./verify.js";
import { runWrk, wrkProblems } from "./wrk.js";

const quick = process.argv.includes("--quick");
const onlyAt = process.argv.indexOf("--only");
const only = onlyAt > 0 ? process.argv[onlyAt + 1] : undefined;
const unknown = process.argv.slice(2).filter((a, i, all) => a !== "--quick" && !(a === "--only" || all[i - 1] === "--only"));
const PHASES = ["attested", "memory"];
const badOnly = onlyAt > 0 && !PHASES.includes(only ?? "");
if (unknown.length > 0 || badOnly) {
  process.stderr.write(`usage: node dist/scripts/bench/run.js [--quick] [--only attested|memory]   (unknown: ${[...unknown, ...(badOnly ? [`--only ${only ?? ""}`] : [])].join(" ")})\n`);
  process.exit(2);
}

/** Every length and count of the run; `--quick` scales them down. */
const P = quick
  ? {
      limitS: 115,
      warmupS: 1,
      keepAliveS: 2,
      handshakeS: 2,
      rpc: { requests: 500, warmup: 100, budgetMs: 6000, rounds: 5 },
      sse: { events: 50, timeoutMs: 15_000 },
      memory: { streams: 250, timeoutMs: 15_000 },
      verify: { iterations: 20, budgetMs: 150, timeoutMs: 30_000 },
      attested: { clients: 100, plainRounds: 1 },
    }
  : {
      limitS: 365,
      warmupS: 3,
      keepAliveS: 10,
      handshakeS: 8,
      rpc: { requests: 5000, warmup: 500, budgetMs: 30_000, rounds: 10 },
      sse: { events: 500, timeoutMs: 60_000 },
      memory: { streams: 1000, timeoutMs: 60_000 },
      verify: { iterations: 300, budgetMs: 1500, timeoutMs: 90_000 },
      attested: { clients: 500, plainRounds: 3 },
    };
/** serve's idle RSS is read again this long after its start: V8's memory reducer has run by then. */
const IDLE_LONG_MS = 30_000;
const CONNECTIONS = 32;
const THREADS = 2;

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
// The compiled tree this script runs from (dist/, or a private out dir), so that it measures the
// build it belongs to.
const build = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = join(build, "proxy/cli/main.js");
const UPSTREAM = join(build, "scripts/bench/upstream.js");
const VERIFY = join(build, "scripts/bench-verify.js");

const children = new Children();
const tmp = mkdtempSync(join(os.tmpdir(), "amcp-bench-"));
const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

function cleanupSync(): void {
  children.killAllSync();
  try {
    rmSync(tmp, { recursive: true, force: true });
  } catch {
    // best effort
  }
}
process.on("exit", cleanupSync);
let stopping = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    stopping = true;
    log(`${sig}: stopping every process started here`);
    void children.stopAll().finally(() => process.exit(130));
  });
}

function machine(nginx: string | null, wrk: string | null): Machine {
  const wrkOut = wrk ? runSync(wrk, ["--version"], 5000) : null;
  return {
    cpu: os.cpus()[0]?.model.trim() ?? "unknown",
    cores: os.cpus().length,
    node: process.version,
    openssl: process.versions.openssl ?? "unknown",
    nginx: nginx ? nginxVersion(nginx) : null,
    wrk: wrkOut ? (/wrk (\S+)/.exec(wrkOut.stdout + wrkOut.stderr)?.[1] ?? "unknown") : null,
    kernel: os.release(),
  };
}

/** What a TLS target negotiates: protocol, cipher, key exchange group, certificate curve. */
function tlsInfo(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false }, () => {
      const cert = s.getPeerCertificate() as tls.PeerCertificate & { nistCurve?: string; asn1Curve?: string };
      const kx = s.getEphemeralKeyInfo() as { name?: string } | null;
      resolve(`${s.getProtocol()} ${s.getCipher().name} ${kx?.name ?? "?"}, ECDSA ${cert.nistCurve ?? cert.asn1Curve ?? "?"}`);
      s.destroy();
    });
    s.setTimeout(5000, () => {
      s.destroy();
      resolve("unknown (timeout)");
    });
    s.on("error", (e) => resolve(`unknown (${e.message})`));
  });
}

async function main(): Promise<number> {
  const started = Date.now();
  const date = new Date();
  const wrk = which("wrk");
  const nginxBin = which("nginx");
  const openssl = which("openssl");
  const results: Results = {
    quick,
    keepAlive: { "1k": {}, "64k": {} },
    rpc: {},
    handshakes: { "P-384": {}, "P-256": {} },
    sse: null,
    memory: {},
    rssAfterLoadMb: {},
    verify: null,
    attested: null,
    tls: {},
    notes: [],
  };
  const note = (s: string): void => {
    log(s);
    results.notes.push(s);
  };
  if (!nginxBin) note("nginx not found (scripts/install-bench-deps installs nginx and wrk): skipping the nginx target");
  if (!wrk) note("wrk not found (scripts/install-bench-deps installs nginx and wrk): skipping keep-alive throughput; handshakes made by a Node client");
  if (nginxBin && !openssl) note("openssl not found: nginx needs a certificate made by it; skipping the nginx target");
  const m = machine(nginxBin, wrk);
  log(`${quick ? "quick run" : "full run"} on ${m.cpu}, ${m.cores} cores, Node ${m.node}, nginx ${m.nginx ?? "—"}, wrk ${m.wrk ?? "—"}`);

  /** A phase that fails is noted and the run goes on. */
  const phase = async (name: string, fn: () => Promise<void>): Promise<void> => {
    if (stopping) return;
    const t0 = Date.now();
    log(`${name}…`);
    try {
      await fn();
      log(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      note(`${name} failed: ${(e as Error).message.split("\n")[0]}`);
    }
  };

  const upstream = await startUpstream(children, UPSTREAM);
  const attestedPhase = (): Promise<void> =>
    phase("attested connections", async () => {
      const a = await measureAttested(children, { cli: CLI, dir: join(tmp, "attested"), upstreamPort: upstream.port, quoteLatencyMs: 25, timeoutMs: 15_000, ...P.attested });
      results.attested = a;
      if (a.failures.length > 0) note(`attested connections: ${a.clients - a.verified} of ${a.clients} not verified, e.g. ${a.failures[0]}`);
      log(
        `  ${a.verified}/${a.clients} verified in ${a.allVerifiedMs?.toFixed(0) ?? "—"} ms: ${a.attestedPerSec?.toFixed(0) ?? "—"} attested conn/s, ${a.quotes ?? "?"} quotes, ${a.refusals ?? "?"} refusals; plain TLS ${a.plainHandshakesPerSec.toFixed(0)} handshakes/s`,
      );
    });
  // Mutated by phases (memory restarts both): a holder, so no narrowing goes stale.
  const at: { nginx: Nginx | null; serve: Serve | null; certs: Record<KeyType, { cert: string; key: string }> | null } = { nginx: null, serve: null, certs: null };
  // Memory on fresh processes, so that "idle" means idle rather than "after the load phases".
  const memoryPhase = (): Promise<void> =>
    phase("memory", async () => {
      if (at.serve) await children.stop(at.serve.proc);
      at.serve = null;
      const fresh = await startServe(children, CLI, join(tmp, "serve"), upstream.port, "P-384");
      at.serve = fresh;
      const s = await measureMemory({ pid: fresh.proc.pid, sseUrl: `${fresh.base}/sse?idle`, streams: P.memory.streams, timeoutMs: P.memory.timeoutMs, idleLongMs: IDLE_LONG_MS });
      results.memory.serve = s;
      log(`  serve: idle ${s.idleRssMb} MB, ${s.idleLongRssMb} MB after ${IDLE_LONG_MS / 1000} s, ${s.perStreamKb} KB per stream`);
      if (nginxBin && at.certs) {
        if (at.nginx) await children.stop(at.nginx.proc);
        at.nginx = null;
        const n = await startNginx(children, nginxBin, join(tmp, "nginx"), upstream.port, at.certs);
        at.nginx = n;
        results.memory.nginx = await measureMemory({ pid: n.workerPid, sseUrl: `https://${LOOPBACK}:${n.ports["P-384"]}/sse?idle`, streams: P.memory.streams, timeoutMs: P.memory.timeoutMs });
        log(`  nginx worker: idle ${results.memory.nginx.idleRssMb} MB, ${results.memory.nginx.perStreamKb} KB per stream`);
      }
    });
  if (only === "attested") {
    await attestedPhase();
    return finish();
  }
  if (only === "memory") {
    if (nginxBin && openssl) at.certs = { "P-384": makeCertificate(openssl, tmp, "P-384"), "P-256": makeCertificate(openssl, tmp, "P-256") };
    await memoryPhase();
    return finish();
  }
  if (nginxBin && openssl) {
    await phase("nginx start", async () => {
      at.certs = { "P-384": makeCertificate(openssl, tmp, "P-384"), "P-256": makeCertificate(openssl, tmp, "P-256") };
      at.nginx = await startNginx(children, nginxBin, join(tmp, "nginx"), upstream.port, at.certs);
    });
  }
  const serve0 = await startServe(children, CLI, join(tmp, "serve"), upstream.port, "P-384");
  at.serve = serve0;
  // Two workers: the keep-alive and 1-connection phases only (each phase's figures are per target).
  let serve2: Serve | null = null;
  await phase("serve with workers=2 start", async () => {
    serve2 = await startServe(children, CLI, join(tmp, "serve"), upstream.port, "P-384", 2);
  });

  // Where each target answers and which process does its work.
  const s2 = (): Serve | null => serve2;
  const base = (t: Target): string | null =>
    t === "direct" ? upstream.base : t === "nginx" ? (at.nginx ? `https://${LOOPBACK}:${at.nginx.ports["P-384"]}` : null) : t === "serve2" ? (s2()?.base ?? null) : (at.serve?.base ?? null);
  const pid = (t: Target): number | null =>
    t === "direct" ? upstream.proc.pid : t === "nginx" ? (at.nginx?.workerPid ?? null) : t === "serve2" ? (s2()?.proc.pid ?? null) : (at.serve?.proc.pid ?? null);
  const live = (): Target[] => (["direct", "nginx", "serve", "serve2"] as const).filter((t) => base(t) !== null);

  if (at.nginx) results.tls.nginx = await tlsInfo(at.nginx.ports["P-384"]);
  results.tls.serve = await tlsInfo(serve0.port);

  if (wrk) {
    await phase("warm-up", async () => {
      for (const t of live()) await runWrk(children, wrk, { url: `${base(t)}/1k`, connections: CONNECTIONS, threads: THREADS, durationS: P.warmupS });
    });
    for (const size of ["1k", "64k"] as const) {
      await phase(`keep-alive ${size}`, async () => {
        for (const t of live()) {
          const { result, cpuS } = await cpuDuring(
            pid(t),
            () => runWrk(children, wrk, { url: `${base(t)}/${size}`, connections: CONNECTIONS, threads: THREADS, durationS: P.keepAliveS }),
            t === "serve2",
          );
          const problem = wrkProblems(result);
          if (problem) note(`keep-alive ${size} ${t}: ${problem}`);
          results.keepAlive[size][t] = { wrk: result, cpuUsPerRequest: cpuS === null || result.requests === 0 ? null : (cpuS * 1e6) / result.requests };
          log(`  ${t} ${size}: ${Math.round(result.rps)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`);
        }
      });
    }
  }

  await phase("1-connection JSON-RPC latency", async () => {
    const urls = Object.fromEntries(live().map((t) => [t, `${base(t)}/rpc`])) as Record<Target, string>;
    const all = await measureRpcLatencies(urls, P.rpc);
    for (const t of live()) {
      const r = all[t];
      if (r.connections > 1) note(`JSON-RPC latency ${t}: ${r.connections} connections were opened (keep-alive not held)`);
      results.rpc[t] = r;
      log(`  ${t}: p50 ${r.ms.p50.toFixed(3)} ms, p99 ${r.ms.p99.toFixed(3)} ms over ${r.requests} requests`);
    }
  });

  {
    const p2 = s2();
    if (p2) await children.stop(p2.proc);
    serve2 = null;
  }

  await phase("SSE", async () => {
    const proxied: Record<string, string> = {};
    for (const t of live()) if (t !== "direct") proxied[t] = `${base(t)}/sse`;
    results.sse = await measureSse({ directUrl: `${upstream.base}/sse`, proxiedUrls: proxied, ...P.sse });
  });

  // Full handshakes: wrk with a shim that stops it resuming sessions (see handshakes.ts).
  let shim: string | null = null;
  if (wrk) {
    const built = buildNoResumeShim(tmp);
    if ("path" in built) shim = built.path;
    else note(`${built.reason}: handshakes are made by a Node client instead of wrk (client-bound on a small machine)`);
  }
  for (const k of ["P-384", "P-256"] as const) {
    await phase(`handshakes ${k}`, async () => {
      let hsServe: Serve | null = k === "P-384" ? at.serve : null;
      try {
        if (!hsServe) hsServe = await startServe(children, CLI, join(tmp, "serve"), upstream.port, k);
        const n = at.nginx;
        const targets: ["nginx" | "serve", string, number][] = [];
        if (n) targets.push(["nginx", `https://${LOOPBACK}:${n.ports[k]}/1k`, n.workerPid]);
        targets.push(["serve", `${hsServe.base}/1k`, hsServe.proc.pid]);
        for (const [t, url, serverPid] of targets) {
          const h = await measureHandshakes(children, { wrk, shim, tmp, url, serverPid, connections: CONNECTIONS, threads: THREADS, durationS: P.handshakeS });
          if (h.errors > 0) note(`handshakes ${k} ${t}: ${h.errors} errors`);
          if (h.resumed) note(`handshakes ${k} ${t}: ${h.resumed} of ${h.handshakes} handshakes resumed a session (not full)`);
          results.handshakes[k][t] = h;
          log(`  ${t} ${k}: ${Math.round(h.perSec)} full handshakes/s, ${h.cpuMsPerHandshake?.toFixed(3) ?? "?"} ms server CPU each (${h.client}, ${h.resumed ?? "?"} resumed)`);
        }
      } finally {
        if (hsServe && hsServe !== at.serve) await children.stop(hsServe.proc);
      }
    });
  }

  await attestedPhase();

  for (const t of live()) {
    const p = pid(t);
    try {
      if (p !== null) results.rssAfterLoadMb[t] = rssMb(p);
    } catch {
      // the process is gone (a failed phase, or stopping): no figure
    }
  }

  await memoryPhase();

  await phase("quote verification", async () => {
    results.verify = await measureVerify(children, VERIFY, P.verify);
  });

  return finish();

  async function finish(): Promise<number> {
    await children.stopAll();
    if (stopping) return 130;
    const durationS = (Date.now() - started) / 1000;
    const rows = buildRows(results);
    const table = renderTable(rows, results, m, date);
    process.stdout.write(`\n${table}\n\n`);
    const file = writeJson(root, date, { machine: m, results, rows, table, durationS });
    log(`${durationS.toFixed(0)} s; results written to ${file}`);
    return 0;
  }
}

const watchdog = setTimeout(() => {
  stopping = true;
  log(`the run exceeded its ${P.limitS} s bound: stopping`);
  void children.stopAll().finally(() => process.exit(1));
}, P.limitS * 1000);

main()
  .then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      log(`failed: ${(e as Error).stack ?? String(e)}`);
      process.exitCode = 1;
    },
  )
  .finally(async () => {
    clearTimeout(watchdog);
    await children.stopAll();
    cleanupSync();
  });
