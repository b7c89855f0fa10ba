// Memory benchmark: resident set size of a server process (the proxy, or nginx's
// worker) when idle and while it holds N open idle SSE streams (issue 14:
// "idle RSS ≤ 60 MB; ≤ 30 KB per idle SSE stream").
//
// RSS is VmRSS from /proc/<pid>/status (Linux only). The measured pid must not
// be this process: the client's own sockets, buffers and agents would be
// counted.
//
// File descriptors: every stream costs one fd here, and the proxy holds two
// (client side + its upstream connection) while the upstream holds one. A
// default soft limit of 1024 does NOT fit 1,000 streams once stdio, the event
// loop's epoll/eventfd, the other benchmark servers' pipes etc. are counted.
// So the client reads its soft limit from /proc/self/limits (what `ulimit -n`
// shows) and its current fd count from /proc/self/fd, opens at most what fits
// with a margin, opens in batches, and if EMFILE/ENFILE still occurs it stops
// opening and reports the streams it did open instead of crashing. The
// measured process's limit is checked too (only a warning: it cannot be
// raised from here; start it under `ulimit -n 4096` or more).
//
// The streams should be idle: point `sseUrl` at an endpoint that sends headers
// and then nothing (or rarely). The client discards whatever data arrives so
// that back-pressure does not grow buffers in the measured process.
//
// Self-check by hand:  node dist/scripts/bench/memory.js --self-check

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { round, selfCheckWhenMain } from "./stats.js";
import { sleep } from "../../test/support/wait.js";

export interface MemoryFigures {
  /** 1 s after the measurement starts (the target's figure). */
  idleRssMb: number;
  /** After `idleLongMs` idle, when asked: V8's memory reducer has run by then (null: not measured). */
  idleLongRssMb: number | null;
  idleLongMs: number | null;
  rssWithStreamsMb: number;
  perStreamKb: number;
  /** Streams that had their headers and were still open when RSS was read (≤ `streams`). */
  streamsOpened: number;
}

const IDLE_SETTLE_MS = 1_000;
const STREAMS_SETTLE_MS = 2_000;
const BATCH = 100;
/** fds kept free in this process for everything else. */
const FD_MARGIN = 64;
const CLOSE_WAIT_MS = 5_000;

/** VmRSS of `pid` in kB. */
export function readRssKb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status (process gone or a kernel thread?)`);
  return Number(m[1]);
}

/** Soft RLIMIT_NOFILE of `pid` ("self" for this process); Infinity when unlimited or unreadable. */
export function softFdLimit(pid: number | "self"): number {
  try {
    const limits = fs.readFileSync(`/proc/${pid}/limits`, "utf8");
    const m = /^Max open files\s+(\S+)/m.exec(limits);
    if (!m?.[1] || m[1] === "unlimited") return Number.POSITIVE_INFINITY;
    const n = Number(m[1]);
    return Number.isFinite(n) ? n : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function openFdCount(): number {
  try {
    return fs.readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/**
 * Idle RSS of `pid` after a 1 s settle, and with `idleLongMs` again once that
 * long has passed since the start (a process that allocates nothing while idle
 * gives memory back only when V8's memory reducer runs, some seconds after its
 * last GC); then `streams` concurrent SSE streams to `sseUrl` over one
 * keep-alive agent (a socket per stream), opened in batches of 100 until all
 * have headers or `timeoutMs` has passed; after a 2 s settle, RSS again.
 * perStreamKb = (with − the last idle figure) / streams still open. Every
 * stream and the agent are destroyed before returning (also on error). If
 * fewer streams opened than asked, `streamsOpened` says how many and stderr
 * says why.
 */
export async function measureMemory(opts: { pid: number; sseUrl: string; streams: number; timeoutMs: number; idleLongMs?: number }): Promise<MemoryFigures> {
  const { pid, sseUrl, streams, timeoutMs, idleLongMs } = opts;
  if (idleLongMs !== undefined && !(idleLongMs > IDLE_SETTLE_MS)) throw new RangeError(`idleLongMs must exceed ${IDLE_SETTLE_MS}: ${idleLongMs}`);
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`bad pid: ${pid}`);
  if (pid === process.pid) throw new Error("measureMemory: the measured pid must not be the client's own process");
  if (!Number.isInteger(streams) || streams < 1) throw new RangeError(`streams must be a positive integer: ${streams}`);
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive: ${timeoutMs}`);
  const url = new URL(sseUrl);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`not an http(s) URL: ${sseUrl}`);
  readRssKb(pid); // fail early if the pid is not there

  // How many sockets fit in this process.
  const fdRoom = softFdLimit("self") - openFdCount() - FD_MARGIN;
  const target = Math.max(0, Math.min(streams, fdRoom));
  if (target < streams) {
    process.stderr.write(`memory: fd limit ${softFdLimit("self")} (ulimit -n) leaves room for ${target} of ${streams} streams; raise it with ulimit -n\n`);
  }
  const serverLimit = softFdLimit(pid);
  if (serverLimit < 2 * streams + FD_MARGIN) {
    process.stderr.write(`memory: pid ${pid} has an fd limit of ${serverLimit}; a proxy needs about ${2 * streams + FD_MARGIN} for ${streams} streams\n`);
  }

  await sleep(IDLE_SETTLE_MS);
  const idle1sKb = readRssKb(pid);
  let idleLongKb: number | null = null;
  if (idleLongMs !== undefined) {
    await sleep(idleLongMs - IDLE_SETTLE_MS);
    idleLongKb = readRssKb(pid);
  }
  const idleKb = idleLongKb ?? idle1sKb;

  const agent = url.protocol === "https:" ? new https.Agent({ keepAlive: true, maxSockets: Infinity, rejectUnauthorized: false }) : new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const requests: http.ClientRequest[] = [];
  const open = new Set<http.ClientRequest>();
  const closed: Promise<void>[] = [];
  const failures = new Map<string, number>();
  let fdExhausted = false;
  const fail = (why: string): void => {
    failures.set(why, (failures.get(why) ?? 0) + 1);
  };

  /** Starts one stream; resolves when it has headers or has failed. */
  const startOne = (deadlineAt: number): Promise<void> =>
    new Promise<void>((resolve) => {
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      const headers = { accept: "text/event-stream", "cache-control": "no-cache" };
      const req = url.protocol === "https:" ? https.request(url, { method: "GET", headers, agent: agent as https.Agent }) : http.request(url, { method: "GET", headers, agent });
      requests.push(req);
      closed.push(new Promise<void>((r) => req.once("close", () => r())));
      const timer = setTimeout(
        () => {
          if (!settled) fail("no headers before timeout");
          req.destroy();
          settle();
        },
        Math.max(0, deadlineAt - Date.now()),
      );
      req.on("response", (res) => {
        res.on("error", () => {});
        if (res.statusCode !== 200) {
          fail(`HTTP ${res.statusCode}`);
          res.resume();
          req.destroy();
          settle();
          return;
        }
        open.add(req);
        res.resume(); // discard any events
        res.once("close", () => open.delete(req));
        settle();
      });
      req.on("error", (e: NodeJS.ErrnoException) => {
        open.delete(req);
        if (e.code === "EMFILE" || e.code === "ENFILE") fdExhausted = true;
        if (!settled) fail(e.code ?? e.message);
        settle();
      });
      req.on("close", () => {
        open.delete(req);
        settle();
      });
      req.end();
    });

  try {
    const deadline = Date.now() + timeoutMs;
    for (let started = 0; started < target; ) {
      if (fdExhausted || Date.now() >= deadline) break;
      const n = Math.min(BATCH, target - started);
      const batch: Promise<void>[] = [];
      for (let i = 0; i < n; i++) batch.push(startOne(deadline));
      started += n;
      await Promise.all(batch); // each bounded by the deadline
    }
    if (fdExhausted) process.stderr.write("memory: EMFILE/ENFILE while opening streams; stopped opening more\n");

    await sleep(STREAMS_SETTLE_MS);
    const withKb = readRssKb(pid);
    const opened = open.size;
    if (opened < streams) {
      const why = [...failures].map(([k, v]) => `${k} ×${v}`).join(", ");
      process.stderr.write(`memory: ${opened} of ${streams} streams open when measured${why ? ` (${why})` : ""}\n`);
    }
    return {
      idleRssMb: round(idle1sKb / 1024, 2),
      idleLongRssMb: idleLongKb === null ? null : round(idleLongKb / 1024, 2),
      idleLongMs: idleLongKb === null ? null : (idleLongMs ?? null),
      rssWithStreamsMb: round(withKb / 1024, 2),
      perStreamKb: opened > 0 ? round((withKb - idleKb) / opened, 2) : Number.NaN,
      streamsOpened: opened,
    };
  } finally {
    for (const req of requests) req.destroy();
    agent.destroy();
    let waitTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((r) => {
        waitTimer = setTimeout(r, CLOSE_WAIT_MS);
      }),
    ]);
    clearTimeout(waitTimer);
  }
}

// ---------------------------------------------------------------------------
// Self-check: a child Node process serving idle SSE streams on 127.0.0.1:0,
// measured with 1,000 streams. Only a plausibility check of the mechanics.

const CHILD_SERVER = `
const http = require("node:http");
const s = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.write(": open\\n\\n");
});
s.listen(0, "127.0.0.1", () => process.stdout.write(String(s.address().port) + "\\n"));
process.stdin.on("end", () => process.exit(0)); process.stdin.resume();
`;

async function selfCheck(): Promise<void> {
  const child = spawn(process.execPath, ["-e", CHILD_SERVER], { stdio: ["pipe", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("child server did not start")), 10_000);
      let buf = "";
      child.stdout.on("data", (d: Buffer) => {
        buf += d.toString();
        const line = buf.split("\n")[0];
        if (buf.includes("\n") && line) {
          clearTimeout(t);
          resolve(Number(line));
        }
      });
      child.once("exit", () => reject(new Error("child server exited")));
    });
    if (child.pid === undefined) throw new Error("no child pid");
    const t0 = Date.now();
    const figures = await measureMemory({
      pid: child.pid,
      sseUrl: `http://127.0.0.1:${port}/sse`,
      streams: 1000,
      timeoutMs: 30_000,
    });
    console.log(JSON.stringify({ pid: child.pid, elapsedMs: Date.now() - t0, figures }, null, 2));
  } finally {
    child.stdin.end();
    child.kill();
  }
}

selfCheckWhenMain(import.meta.url, "memory", selfCheck);
