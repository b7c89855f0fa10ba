/**
 * The load scenarios the robustness tests run short and `npm run soak` runs long: one code path,
 * so the soak's figures and the tests' assertions describe the same thing.
 */
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { UpstreamStats } from "./robust-upstream.js";
import { fetchVia, percentile, pinnedAgent, readSse, sequenceProblems, type SpawnedServe } from "./robust.js";

export interface StreamFigures {
  streams: number;
  eventsPerStream: number;
  /** Events received, all streams. */
  received: number;
  /** Events the upstream wrote, all streams. */
  sent: number;
  /** Streams that ended cleanly with every event exactly once, in order. */
  intact: number;
  /** The first few problems, "s12: event #40 is 41". */
  problems: string[];
  ms: number;
}

/** `streams` concurrent SSE streams of `seconds` each through serve, every event checked. */
export async function streamScenario(serve: SpawnedServe, stats: UpstreamStats, opts: { streams: number; seconds: number; everyMs: number; tag?: string }): Promise<StreamFigures> {
  const n = Math.round((opts.seconds * 1000) / opts.everyMs);
  const agent = pinnedAgent(serve.certPem);
  const tag = opts.tag ?? "s";
  const t0 = performance.now();
  try {
    const outcomes = await Promise.all(Array.from({ length: opts.streams }, (_, j) => readSse(agent, serve.port, `/sse?n=${n}&every=${opts.everyMs}&k=${tag}${j}`)));
    const problems: string[] = [];
    let intact = 0;
    let received = 0;
    let sent = 0;
    outcomes.forEach((o, j) => {
      received += o.seen.length;
      sent += stats.sent[`${tag}${j}`] ?? 0;
      const p = sequenceProblems(o.seen, n);
      if (o.status !== 200) p.unshift(`status ${o.status}`);
      if (o.how !== "end") p.unshift(`ended by ${o.how}`);
      if (o.announced !== n) p.unshift(`end announced ${o.announced}`);
      if (p.length === 0) intact++;
      else if (problems.length < 10) problems.push(`${tag}${j}: ${p.join("; ")}`);
    });
    return { streams: opts.streams, eventsPerStream: n, received, sent, intact, problems, ms: performance.now() - t0 };
  } finally {
    agent.destroy();
  }
}

export interface LatencyFigures {
  requests: number;
  failures: number;
  p50: number;
  p99: number;
  max: number;
}

/** `count` live requests to /fast over `concurrency` keep-alive connections; latency in ms. */
export async function liveLatency(serve: SpawnedServe, opts: { count: number; concurrency: number; maxMs?: number }): Promise<LatencyFigures> {
  const agent = pinnedAgent(serve.certPem, { maxSockets: opts.concurrency });
  const times: number[] = [];
  let failures = 0;
  let next = 0;
  const deadline = performance.now() + (opts.maxMs ?? 60_000);
  try {
    // The connections' handshakes are not what is measured.
    await Promise.all(Array.from({ length: opts.concurrency }, () => fetchVia(agent, serve.port, "/fast")));
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (next < opts.count && performance.now() < deadline) {
          next++;
          try {
            const a = await fetchVia(agent, serve.port, "/fast", { timeoutMs: 10_000 });
            if (a.status === 200) times.push(a.ms);
            else failures++;
          } catch {
            failures++;
          }
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { requests: times.length + failures, failures, p50: percentile(times, 50), p99: percentile(times, 99), max: percentile(times, 100) };
}

export interface Slowloris {
  /** Connections whose TLS handshake completed. */
  opened: number;
  /** Connections the server closed, with the time from their handshake to the cut (ms). */
  cutAfter: number[];
  /** Connections still open. */
  open(): number;
  /** Did the server answer anything before cutting (Node sends 408 on a header timeout)? */
  answers: string[];
  close(): void;
}

/**
 * `count` TLS connections (handshake done) that send a request head one header line every
 * `trickleMs`, never finishing it: what a slowloris does. Opened `batch` at a time.
 */
export async function slowloris(serve: SpawnedServe, opts: { count: number; trickleMs: number; batch?: number }): Promise<Slowloris> {
  const sockets: TLSSocket[] = [];
  const cutAfter: number[] = [];
  const answers: string[] = [];
  let live = 0;
  const timers: NodeJS.Timeout[] = [];
  const openOne = (): Promise<void> =>
    new Promise((resolve) => {
      const s = tlsConnect({ host: "127.0.0.1", port: serve.port, ca: serve.certPem, checkServerIdentity: () => undefined });
      let t0 = 0;
      s.on("error", () => {});
      s.once("secureConnect", () => {
        t0 = performance.now();
        live++;
        sockets.push(s);
        s.write("GET /fast HTTP/1.1\r\nHost: slow\r\n");
        let k = 0;
        const t = setInterval(() => {
          if (s.destroyed || !s.writable) return clearInterval(t);
          s.write(`X-Slow-${k++}: ${"a".repeat(8)}\r\n`);
        }, opts.trickleMs);
        timers.push(t);
        resolve();
      });
      s.on("data", (d: Buffer) => {
        if (answers.length < 5) answers.push(d.toString("latin1").split("\r\n", 1)[0]!);
      });
      s.once("close", () => {
        if (t0) {
          live--;
          cutAfter.push(performance.now() - t0);
        } else resolve();
      });
    });
  const batch = opts.batch ?? 50;
  for (let i = 0; i < opts.count; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, opts.count - i) }, openOne));
  }
  return {
    opened: sockets.length,
    cutAfter,
    open: () => live,
    answers,
    close: () => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
    },
  };
}
