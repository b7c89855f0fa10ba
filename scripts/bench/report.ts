/**
 * The benchmark's one table: each metric per target (direct upstream, nginx, serve), the ratios
 * serve/nginx and serve/direct, and PASS / MISS against the targets of issues 7 and 14; printed as Markdown
 * (so docs/performance.md can quote it as it is) and written with every raw figure as JSON under
 * bench/results/.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AttestedResult } from "./attested.js";
import type { HandshakeResult } from "./handshakes.js";
import type { RpcLatency } from "./latency.js";
import type { MemoryFigures } from "./memory.js";
import type { SseFigures } from "./sse.js";
import type { KeyType } from "./targets.js";
import type { VerifyResult } from "./verify.js";
import type { WrkResult } from "./wrk.js";

/** serve2: `serve --set workers=2` (node:cluster), beside the single-process row it does not replace. */
export type Target = "direct" | "nginx" | "serve" | "serve2";
export const TARGETS: readonly Target[] = ["direct", "nginx", "serve", "serve2"];

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  openssl: string;
  nginx: string | null;
  wrk: string | null;
  kernel: string;
}

export interface KeepAlive {
  wrk: WrkResult;
  /** CPU microseconds per request of the serving process (upstream / nginx worker / serve). */
  cpuUsPerRequest: number | null;
}

export interface Results {
  quick: boolean;
  keepAlive: Record<"1k" | "64k", Partial<Record<Target, KeepAlive>>>;
  rpc: Partial<Record<Target, RpcLatency>>;
  handshakes: Record<KeyType, Partial<Record<"nginx" | "serve", HandshakeResult>>>;
  sse: Record<string, SseFigures> | null;
  memory: Partial<Record<"nginx" | "serve", MemoryFigures>>;
  /** RSS of each process right after the load phases (MB). */
  rssAfterLoadMb: Partial<Record<Target, number>>;
  verify: VerifyResult | null;
  /** The "attested connections" phase: a burst of connector clients against paced quotes. */
  attested: AttestedResult | null;
  /** Cipher suites negotiated with each TLS target, as a check that like is compared with like. */
  tls: Partial<Record<"nginx" | "serve", string>>;
  notes: string[];
}

export type Verdict = "PASS" | "MISS" | "n/a";

export interface Row {
  metric: string;
  values: Partial<Record<Target, number>>;
  serveNginx: number | null;
  serveDirect: number | null;
  serve2Nginx: number | null;
  target: string;
  result: Verdict | "";
  /** Decimals for the values in the printed table. */
  digits: number;
}

const finite = (x: number | null | undefined): x is number => typeof x === "number" && Number.isFinite(x);

function ratio(a: number | undefined, b: number | undefined): number | null {
  return finite(a) && finite(b) && b !== 0 ? a / b : null;
}

function verdict(ok: boolean | null): Verdict {
  return ok === null ? "n/a" : ok ? "PASS" : "MISS";
}

/** Build every row from the results; ratios only where dividing says something. */
export function buildRows(r: Results): Row[] {
  const rows: Row[] = [];
  const add = (metric: string, values: Partial<Record<Target, number | null | undefined>>, digits: number, opts: { ratios?: boolean; target?: string; result?: Verdict | "" } = {}): void => {
    const v: Partial<Record<Target, number>> = {};
    for (const t of TARGETS) {
      const x = values[t];
      if (finite(x)) v[t] = x;
    }
    // A phase that did not run (no wrk, no nginx and no serve figure) leaves no empty row behind.
    if (Object.keys(v).length === 0) return;
    const ratios = opts.ratios ?? true;
    rows.push({
      metric,
      values: v,
      serveNginx: ratios ? ratio(v.serve, v.nginx) : null,
      serveDirect: ratios ? ratio(v.serve, v.direct) : null,
      serve2Nginx: ratios ? ratio(v.serve2, v.nginx) : null,
      target: opts.target ?? "",
      result: opts.result ?? "",
      digits,
    });
  };
  const pick = <T>(m: Partial<Record<Target, T>>, f: (x: T) => number | null): Partial<Record<Target, number | null>> =>
    Object.fromEntries(TARGETS.filter((t) => m[t] !== undefined).map((t) => [t, f(m[t] as T)]));

  for (const size of ["1k", "64k"] as const) {
    const ka = r.keepAlive[size];
    const label = size === "1k" ? "1 KB" : "64 KB";
    const rps = pick(ka, (x) => x.wrk.rps);
    const okRps = size === "1k" && finite(rps.serve) && finite(rps.nginx) ? rps.serve >= 0.5 * rps.nginx : null;
    add(`keep-alive ${label}, req/s (32 conn)`, rps, 0, size === "1k" ? { target: "≥ 0.5× nginx", result: verdict(okRps) } : {});
    if (size === "1k") {
      // The moonshot: more than one event loop in one process (here: the workers column).
      const two = finite(rps.serve2) && finite(rps.nginx) ? rps.serve2 >= rps.nginx : null;
      add("keep-alive 1 KB, req/s, 2 event loops (moonshot)", { nginx: rps.nginx, serve2: rps.serve2 }, 0, { target: "≥ 1.0× nginx", result: verdict(two) });
    }
    add(
      `keep-alive ${label}, p50 ms`,
      pick(ka, (x) => x.wrk.p50Ms),
      2,
    );
    add(
      `keep-alive ${label}, p99 ms`,
      pick(ka, (x) => x.wrk.p99Ms),
      2,
    );
    add(
      `keep-alive ${label}, server CPU µs/req`,
      pick(ka, (x) => x.cpuUsPerRequest),
      0,
    );
  }

  const p = pick(r.rpc, (x) => x.ms.p50);
  const p99 = pick(r.rpc, (x) => x.ms.p99);
  add("1 conn JSON-RPC POST, p50 ms", p, 3);
  add("1 conn JSON-RPC POST, p99 ms", p99, 3);
  const added = (m: Partial<Record<Target, number | null>>): Partial<Record<Target, number | null>> => {
    const d = m.direct;
    if (!finite(d)) return {};
    return { nginx: finite(m.nginx) ? m.nginx - d : null, serve: finite(m.serve) ? m.serve - d : null, serve2: finite(m.serve2) ? m.serve2 - d : null };
  };
  const a50 = added(p);
  const a99 = added(p99);
  add("1 conn added p50 over direct, ms", a50, 3, {
    ratios: false,
    target: "≤ nginx + 0.1 ms",
    result: verdict(finite(a50.serve) && finite(a50.nginx) ? a50.serve <= a50.nginx + 0.1 : null),
  });
  add("1 conn added p99 over direct, ms", a99, 3, { ratios: false });

  for (const k of ["P-384", "P-256"] as const) {
    const h = r.handshakes[k];
    const hs = { nginx: h.nginx?.perSec, serve: h.serve?.perSec };
    add(`full handshakes/s, ${k} (32 conn)`, hs, 0, {
      target: "≥ 0.8× nginx",
      result: verdict(finite(hs.serve) && finite(hs.nginx) ? hs.serve >= 0.8 * hs.nginx : null),
    });
    const cpu = { nginx: h.nginx?.cpuMsPerHandshake, serve: h.serve?.cpuMsPerHandshake };
    add(`server CPU ms/handshake, ${k}`, cpu, 3);
    // The rate above shares the machine with the client (whose P-384 verification costs about as
    // much as the server's signature): on a small machine it is bound by both. This row is the
    // server alone: handshakes per CPU-second of the process doing the TLS work.
    const cap = { nginx: finite(cpu.nginx) && cpu.nginx > 0 ? 1000 / cpu.nginx : null, serve: finite(cpu.serve) && cpu.serve > 0 ? 1000 / cpu.serve : null };
    add(`full handshakes per server CPU-second, ${k}`, cap, 0, {
      target: "≥ 0.8× nginx",
      result: verdict(finite(cap.serve) && finite(cap.nginx) ? cap.serve >= 0.8 * cap.nginx : null),
    });
  }

  if (r.sse) {
    const s = r.sse;
    const hd = (q: "p50" | "p99"): Partial<Record<Target, number | null>> => ({ direct: s.direct?.headersMs[q], nginx: s.nginx?.headersMs[q], serve: s.serve?.headersMs[q] });
    for (const q of ["p50", "p99"] as const) {
      const v = hd(q);
      add(`SSE time to headers ${q}, ms (new conn)`, v, 2, {
        ratios: false,
        target: "≤ direct + 5 ms",
        result: verdict(finite(v.serve) && finite(v.direct) ? v.serve <= v.direct + 5 : null),
      });
    }
    const ev = (q: "p50" | "p99"): Partial<Record<Target, number | null>> => ({ nginx: s.nginx?.addedEventDelayMs[q], serve: s.serve?.addedEventDelayMs[q] });
    add("SSE added per-event delay p50, ms", ev("p50"), 3, { ratios: false });
    const e99 = ev("p99");
    add("SSE added per-event delay p99, ms", e99, 3, { ratios: false, target: "≤ 1 ms", result: verdict(finite(e99.serve) ? e99.serve <= 1 : null) });
  }

  const a = r.attested;
  if (a) {
    const burst = `${a.clients} at once, ${a.quoteLatencyMs} ms quotes`;
    if (a.allVerifiedMs === null) add(`attested connections verified, of ${a.clients} (${burst})`, { serve: a.verified }, 0, { ratios: false, target: "all, ≤ 3000 ms", result: "MISS" });
    else add(`attested connections: all verified, ms (${burst})`, { serve: a.allVerifiedMs }, 0, { ratios: false, target: "≤ 3000 ms", result: verdict(a.allVerifiedMs <= 3000) });
    add(`plain TLS full handshakes/s (same burst, no resumption)`, { serve: a.plainHandshakesPerSec }, 0, { ratios: false });
    const per = a.attestedPerSec;
    add(`attested connections/s (${burst})`, { serve: per ?? Number.NaN }, 0, {
      ratios: false,
      target: "≥ 0.8× plain handshakes/s",
      result: per === null ? "MISS" : verdict(per >= 0.8 * a.plainHandshakesPerSec),
    });
    add("fresh-evidence quotes made for that burst", { serve: a.quotes }, 0, { ratios: false });
    const c = a.cpuMsPerConnection;
    add("serve CPU ms per attested connection (plain TLS: per handshake)", { serve: c.serveAttested }, 3, { ratios: false, target: c.servePlain === null ? "" : `plain ${c.servePlain.toFixed(3)}` });
    add("client CPU ms per attested connection (plain TLS: per handshake)", { serve: c.clientAttested }, 3, { ratios: false, target: `plain ${c.clientPlain.toFixed(3)}` });
    const q = a.plainRequest;
    if (q) {
      add("plain TLS connections/s with the same 1 KB request, no attestation (like-for-like)", { serve: q.perSec }, 0, { ratios: false, target: q.failures ? `${q.failures} failed` : "" });
      add("serve / client CPU ms per plain connection with that request", { serve: q.serveCpuMs }, 3, { ratios: false, target: `client ${q.clientCpuMs.toFixed(3)}` });
    }
  }

  const m = r.memory;
  add("idle RSS, MB (fresh process)", { nginx: m.nginx?.idleRssMb, serve: m.serve?.idleRssMb }, 1, {
    ratios: false,
    target: "≤ 60 MB",
    result: verdict(finite(m.serve?.idleRssMb) ? m.serve.idleRssMb <= 60 : null),
  });
  const longS = (m.serve?.idleLongMs ?? m.nginx?.idleLongMs ?? null) === null ? null : Math.round((m.serve?.idleLongMs ?? m.nginx?.idleLongMs ?? 0) / 1000);
  if (longS !== null) add(`idle RSS after ${longS} s idle, MB (same process)`, { nginx: m.nginx?.idleLongRssMb, serve: m.serve?.idleLongRssMb }, 1, { ratios: false });
  const streams = m.serve?.streamsOpened ?? m.nginx?.streamsOpened;
  add(`RSS with ${streams ?? "N"} idle SSE streams, MB`, { nginx: m.nginx?.rssWithStreamsMb, serve: m.serve?.rssWithStreamsMb }, 1, { ratios: false });
  add("RSS per idle SSE stream, KB", { nginx: m.nginx?.perStreamKb, serve: m.serve?.perStreamKb }, 1, {
    ratios: false,
    target: "≤ 30 KB",
    result: verdict(finite(m.serve?.perStreamKb) ? m.serve.perStreamKb <= 30 : null),
  });
  add("RSS after the load phases, MB", r.rssAfterLoadMb, 1, { ratios: false });
  return rows;
}

function fmt(x: number | null | undefined, digits: number): string {
  if (!finite(x)) return "—";
  return digits === 0 ? Math.round(x).toLocaleString("en-US") : x.toFixed(digits);
}

const fmtRatio = (x: number | null): string => (finite(x) ? `${x.toFixed(2)}×` : "");

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node} (OpenSSL ${m.openssl}), nginx ${m.nginx ?? "not installed"}, wrk ${m.wrk ?? "not installed"}`;
}

/** The table as Markdown, the verification line and the machine line under it. */
export function renderTable(rows: Row[], r: Results, m: Machine, date: Date): string {
  const lines = ["| metric | direct | nginx | serve | serve/nginx | serve/direct | serve, 2 workers | 2 workers/nginx | target | |", "|---|--:|--:|--:|--:|--:|--:|--:|---|---|"];
  for (const row of rows) {
    lines.push(
      `| ${row.metric} | ${fmt(row.values.direct, row.digits)} | ${fmt(row.values.nginx, row.digits)} | ${fmt(row.values.serve, row.digits)} | ${fmtRatio(row.serveNginx)} | ${fmtRatio(row.serveDirect)} | ${fmt(row.values.serve2, row.digits)} | ${fmtRatio(row.serve2Nginx)} | ${row.target} | ${row.result} |`,
    );
  }
  const out = [lines.join("\n"), ""];
  const judged = rows.filter((row) => row.result !== "");
  if (judged.length > 0) {
    const count = (v: Verdict): number => judged.filter((row) => row.result === v).length;
    out.push(
      `Targets: ${count("PASS")} PASS, ${count("MISS")} MISS${count("n/a") ? `, ${count("n/a")} not measured` : ""}. ${judged.map((row) => `${row.metric} ${row.target}: ${row.result}`).join("; ")}.`,
    );
  }
  if (r.verify) {
    const v = r.verify;
    out.push(
      `Quote verification with collateral (ms per quote, mean of two real quotes): @phala/dcap-qvl ${v.dcapQvlMs.toFixed(2)}; ours cold ${v.coldMs.toFixed(3)} (${(v.dcapQvlMs / v.coldMs).toFixed(1)}×), keys ${v.keysMs.toFixed(3)} (${(v.dcapQvlMs / v.keysMs).toFixed(1)}×), warm ${v.warmMs.toFixed(3)} (${(v.dcapQvlMs / v.warmMs).toFixed(1)}×); collateral given as a directory ${v.dirMs.toFixed(3)} (${(v.dcapQvlMs / v.dirMs).toFixed(1)}×), its first call ${v.dirFirstMs.toFixed(3)}.`,
    );
  } else {
    out.push("Quote verification: not run.");
  }
  if (r.attested) {
    const a = r.attested;
    out.push(
      `Attested connections: ${a.verified} of ${a.clients} clients (attestedFetch, exporter freshness, one address, default shares) verified${a.allVerifiedMs === null ? "" : ` in ${a.allVerifiedMs.toFixed(0)} ms`}, ${a.attestedPerSec === null ? "—" : a.attestedPerSec.toFixed(0)} per second (${a.attestedPerSec === null ? "—" : (a.attestedPerSec / a.plainHandshakesPerSec).toFixed(2)}× plain TLS, ${a.plainRounds.map((x) => x.toFixed(0)).join(" / ")} handshakes/s; ${a.plainRequest ? `${(a.attestedPerSec === null ? 0 : a.attestedPerSec / a.plainRequest.perSec).toFixed(2)}× plain TLS with the same request, ${a.plainRequest.perSec.toFixed(0)}/s` : "no like-for-like figure"}); ${a.quotes ?? "?"} quotes, ${a.refusals ?? "?"} share refusals.`,
    );
  }
  if (r.tls.nginx || r.tls.serve) out.push(`TLS: nginx ${r.tls.nginx ?? "—"}, serve ${r.tls.serve ?? "—"}.`);
  const hs = (["P-384", "P-256"] as const).flatMap((k) => (["nginx", "serve"] as const).map((t) => r.handshakes[k][t])).filter((h): h is HandshakeResult => h !== undefined);
  if (hs.length > 0) {
    const clients = [...new Set(hs.map((h) => h.client))].join(", ");
    const resumed = hs.some((h) => h.resumed === null) ? "not counted" : String(hs.reduce((a, h) => a + (h.resumed ?? 0), 0));
    out.push(`Handshakes: new TCP connection and full TLS 1.3 handshake per request (client: ${clients}; resumed sessions: ${resumed}), each carrying one 1 KB request.`);
  }
  out.push(`Machine: ${machineLine(m)}; ${date.toISOString().slice(0, 10)}${r.quick ? " (--quick)" : ""}.`);
  for (const n of r.notes) out.push(`Note: ${n}`);
  // Table, then one paragraph per line (Markdown would otherwise run them together).
  return [out[0], ...out.slice(2)].join("\n\n");
}

/** bench/results/<ISO timestamp>.json (colons as '-' so the name works everywhere); returns the path. */
export function writeJson(root: string, date: Date, payload: { machine: Machine; results: Results; rows: Row[]; table: string; durationS: number }): string {
  const dir = join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${date.toISOString().replace(/:/g, "-")}.json`);
  const json = JSON.stringify({ date: date.toISOString(), ...payload }, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
  writeFileSync(file, json + "\n");
  return file;
}
