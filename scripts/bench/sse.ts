// SSE benchmark: time to response headers and per-event delivery delay, for a
// direct upstream and for each proxy in front of it (issue 7, "SSE: headers
// within 5 ms of the upstream's; added per-event delay p99 ≤ 1 ms").
//
// The upstream emits `data: {"t": <ms>}\n\n` every ~10 ms, where t is its wall
// clock (Date.now(), or performance.timeOrigin + performance.now()). The client
// stamps each chunk on arrival with performance.timeOrigin + performance.now()
// (same machine, same clock), so delay = arrival − t. Any constant offset
// between the two processes' clocks (Date.now() granularity, timeOrigin skew)
// is cancelled by reporting proxied delays relative to the direct p50.
//
// Self-check by hand:  node dist/scripts/bench/sse.js --self-check

import * as http from "node:http";
import * as https from "node:https";
import { StringDecoder } from "node:string_decoder";
import { percentile, round, selfCheckWhenMain } from "./stats.js";

export interface SseFigures {
  headersMs: { p50: number; p99: number };
  addedEventDelayMs: { p50: number; p99: number };
}

/** Key of the direct target in the result record. */
export const DIRECT_KEY = "direct";

/** Stream openings per target (each a fresh connection, so headersMs includes TCP + TLS). */
const OPENINGS_PER_TARGET = 10;
/** Events read (and discarded) from one warm-up opening per target. */
const WARMUP_EVENTS = 3;
/** An opening that gets no headers in this time is abandoned. */
const HEADERS_TIMEOUT_MS = 5_000;
/** Assumed upstream event interval, only used to cap one opening's duration. */
const EVENT_INTERVAL_MS = 10;
/** Guard against an upstream that never sends a newline. */
const MAX_LINE_BUFFER = 1 << 20;

/** Client clock in the upstream's time base: wall-clock ms with sub-ms resolution. */
function nowWallMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Incremental text/event-stream parser. Chunks may split or coalesce events;
 * lines end in LF or CRLF (a lone CR line ending is not handled — no server
 * in this benchmark produces one). Calls `onData` with each event's data field.
 */
export class SseParser {
  private readonly decoder = new StringDecoder("utf8");
  private buf = "";
  private dataLines: string[] = [];

  push(chunk: Buffer | string, onData: (data: string) => void): void {
    this.buf += typeof chunk === "string" ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (;;) {
      const nl = this.buf.indexOf("\n", start);
      if (nl < 0) break;
      let line = this.buf.slice(start, nl);
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (this.dataLines.length > 0) {
          const data = this.dataLines.join("\n");
          this.dataLines = [];
          onData(data);
        }
        continue;
      }
      if (line.startsWith(":")) continue; // comment / keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.dataLines.push(value);
      // event:, id:, retry: are irrelevant here
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length > MAX_LINE_BUFFER) this.buf = "";
  }
}

/** Extracts the upstream timestamp from an event's data, or undefined. */
function eventTime(data: string): number | undefined {
  try {
    const v: unknown = JSON.parse(data);
    if (v !== null && typeof v === "object" && "t" in v) {
      const t = (v as { t: unknown }).t;
      if (typeof t === "number" && Number.isFinite(t)) return t;
    }
  } catch {
    // not JSON: ignore
  }
  return undefined;
}

interface OpeningResult {
  /** ms from request start to response headers; NaN when none arrived. */
  headersMs: number;
  status: number;
  /** arrival − t for each event received, in ms. */
  delays: number[];
  error?: string;
}

/**
 * Opens one SSE stream on a fresh connection (agent: false), reads up to
 * `maxEvents` timestamped events, then destroys it. Resolves once the socket
 * has closed (or shortly after, should 'close' never come). Never rejects.
 */
function openStream(url: URL, maxEvents: number, deadlineAt: number): Promise<OpeningResult> {
  return new Promise((resolve) => {
    const delays: number[] = [];
    const parser = new SseParser();
    let headersMs = Number.NaN;
    let status = 0;
    let error: string | undefined;
    let finished = false;
    let resolved = false;
    let fallback: NodeJS.Timeout | undefined;

    const done = (): void => {
      if (resolved) return;
      resolved = true;
      clearTimeout(timer);
      clearTimeout(headersTimer);
      if (fallback) clearTimeout(fallback);
      const r: OpeningResult = { headersMs, status, delays };
      if (error !== undefined) r.error = error;
      resolve(r);
    };
    const finish = (reason?: string): void => {
      if (finished) return;
      finished = true;
      if (reason !== undefined && error === undefined) error = reason;
      req.destroy();
      // 'close' normally follows at once; do not hang if it does not.
      fallback = setTimeout(done, 2_000);
    };

    const headers = { accept: "text/event-stream", "cache-control": "no-cache" };
    const t0 = performance.now();
    const req = url.protocol === "https:" ? https.request(url, { method: "GET", headers, agent: false, rejectUnauthorized: false }) : http.request(url, { method: "GET", headers, agent: false });

    const timer = setTimeout(() => finish(`timed out after ${delays.length} events`), Math.max(0, deadlineAt - performance.now()));
    const headersTimer = setTimeout(
      () => {
        if (Number.isNaN(headersMs)) finish("no response headers");
      },
      Math.max(0, Math.min(HEADERS_TIMEOUT_MS, deadlineAt - performance.now())),
    );

    req.on("response", (res) => {
      headersMs = performance.now() - t0;
      status = res.statusCode ?? 0;
      res.on("error", () => {});
      if (status !== 200) {
        res.resume();
        finish(`HTTP ${status}`);
        return;
      }
      res.on("data", (chunk: Buffer) => {
        const arrival = nowWallMs(); // first thing: stamp the chunk
        if (finished) return;
        parser.push(chunk, (data) => {
          if (delays.length >= maxEvents) return;
          const t = eventTime(data);
          if (t === undefined) return;
          delays.push(arrival - t);
        });
        if (delays.length >= maxEvents) finish();
      });
      res.on("end", () => finish(delays.length < maxEvents ? "stream ended early" : undefined));
    });
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (!finished && error === undefined) error = e.code ?? e.message;
      finish();
    });
    req.on("close", done);
    req.end();
  });
}

interface TargetState {
  name: string;
  url: URL;
  headers: number[];
  delays: number[];
  attempts: number;
  errors: string[];
}

/**
 * Measures every target: `OPENINGS_PER_TARGET` sequential openings each (one
 * discarded warm-up first), round-robin across targets so that drift in the
 * machine's load affects all alike, until each has `events` events, the
 * openings (×2 for retries) are spent, or `timeoutMs` — the budget for the
 * whole call, all targets together — runs out.
 *
 * Result keys: "direct" plus the keys of `proxiedUrls`.
 * - headersMs: p50/p99 of request start → response headers, over the openings
 *   (each a new TCP + TLS connection, no session resumption).
 * - addedEventDelayMs: for a proxied target, p50/p99 of (its per-event delay −
 *   the direct target's p50 delay); for "direct", its raw p50/p99 per-event
 *   delay (its added delay is 0 by definition).
 * Values are in ms rounded to µs; NaN (null in JSON) when a target produced no
 * data. Shortfalls and errors are reported on stderr, not thrown.
 */
export async function measureSse(opts: { directUrl: string; proxiedUrls: Record<string, string>; events: number; timeoutMs: number }): Promise<Record<string, SseFigures>> {
  const { directUrl, proxiedUrls, events, timeoutMs } = opts;
  if (!Number.isInteger(events) || events < 1) throw new RangeError(`events must be a positive integer: ${events}`);
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive: ${timeoutMs}`);
  if (Object.hasOwn(proxiedUrls, DIRECT_KEY)) {
    throw new Error(`proxiedUrls must not use the key "${DIRECT_KEY}"`);
  }

  const targets: TargetState[] = [[DIRECT_KEY, directUrl] as const, ...Object.entries(proxiedUrls)].map(([name, u]) => {
    const url = new URL(u);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`${name}: not an http(s) URL: ${u}`);
    return { name, url, headers: [], delays: [], attempts: 0, errors: [] };
  });

  const openings = Math.min(OPENINGS_PER_TARGET, events);
  const perStream = Math.ceil(events / openings);
  const maxAttempts = openings * 2;
  const deadline = performance.now() + timeoutMs;
  const openingCap = HEADERS_TIMEOUT_MS + perStream * EVENT_INTERVAL_MS * 5;

  // Warm-up: JIT, DNS-free loopback path, the proxies' first-connection costs.
  for (const t of targets) {
    if (performance.now() >= deadline) break;
    await openStream(t.url, WARMUP_EVENTS, Math.min(deadline, performance.now() + openingCap));
  }

  for (let round = 0; round < maxAttempts; round++) {
    let active = false;
    for (const t of targets) {
      if (t.delays.length >= events || t.attempts >= maxAttempts) continue;
      if (performance.now() >= deadline) break;
      active = true;
      t.attempts++;
      const want = Math.min(perStream, events - t.delays.length);
      const r = await openStream(t.url, want, Math.min(deadline, performance.now() + openingCap));
      if (r.status === 200 && Number.isFinite(r.headersMs)) t.headers.push(r.headersMs);
      for (const d of r.delays) t.delays.push(d);
      if (r.error !== undefined && r.delays.length < want) t.errors.push(r.error);
    }
    if (!active || performance.now() >= deadline) break;
  }

  const direct = targets[0] as TargetState;
  const directP50 = percentile(direct.delays, 50);
  const out: Record<string, SseFigures> = {};
  for (const t of targets) {
    if (t.delays.length < events || t.errors.length > 0) {
      const errs = [...new Set(t.errors)].join("; ");
      process.stderr.write(`sse: ${t.name}: ${t.delays.length}/${events} events over ${t.headers.length} openings` + (errs ? ` (${errs})` : "") + "\n");
    }
    const delays = t === direct ? t.delays : t.delays.map((d) => d - directP50);
    out[t.name] = {
      headersMs: { p50: round(percentile(t.headers, 50)), p99: round(percentile(t.headers, 99)) },
      addedEventDelayMs: { p50: round(percentile(delays, 50)), p99: round(percentile(delays, 99)) },
    };
  }
  return out;
}

// ---------------------------------------------------------------------------
// Self-check: a 10 ms SSE upstream on 127.0.0.1:0, measured directly and
// (same URL) as a pseudo-proxied target whose added delay should be ≈ 0.

async function selfCheck(): Promise<void> {
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || !req.url?.startsWith("/sse")) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.flushHeaders();
    const iv = setInterval(() => {
      res.write(`data: {"t": ${performance.timeOrigin + performance.now()}}\n\n`);
    }, 10);
    res.on("close", () => clearInterval(iv));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no server address");
  const url = `http://127.0.0.1:${addr.port}/sse`;
  try {
    const t0 = performance.now();
    const figures = await measureSse({
      directUrl: url,
      proxiedUrls: { "same-upstream": url },
      events: 500,
      timeoutMs: 30_000,
    });
    console.log(JSON.stringify({ upstream: url, elapsedMs: Math.round(performance.now() - t0), figures }, null, 2));
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

selfCheckWhenMain(import.meta.url, "sse", selfCheck);
