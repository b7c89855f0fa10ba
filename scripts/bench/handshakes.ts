/**
 * Full TLS handshakes per second, and the server's CPU per handshake.
 *
 * Each request is a new TCP connection and a new TLS 1.3 handshake (`Connection: close`) carrying
 * one proxied 1 KB request. CPU is utime + stime from /proc of the process that does the TLS work
 * (nginx's worker, serve's only process) over the run, divided by the handshakes.
 *
 * "Full" needs care: wrk keeps each connection's SSL object across reconnects (SSL_clear keeps
 * the session), so it resumes TLS sessions whenever the server allows it, and both nginx and Node
 * do by default (measured: 1,623 of 1,631 wrk handshakes to nginx were resumptions, which skip the
 * certificate signature, the most expensive step with P-384). The client has to refuse, without
 * touching either server: a 20-line LD_PRELOAD shim, compiled here with the system C compiler,
 * wraps SSL_clear so the session is dropped before each reconnect and counts any resumption that
 * still happened (the run reports it; it should be 0). Without a C compiler the phase falls back to
 * a Node TLS client in this process (it never offers a session), and says so: its own CPU per
 * handshake is higher than wrk's, so on a small machine the figures are client-bound.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { cpuDuring, LOOPBACK, runSync, which, type Children } from "./proc.js";
import { runWrk, type WrkResult } from "./wrk.js";

export interface HandshakeResult {
  perSec: number;
  handshakes: number;
  /** Server CPU milliseconds per handshake (with its one request); null when /proc was unreadable. */
  cpuMsPerHandshake: number | null;
  /** Which client made the handshakes. */
  client: "wrk (no-resumption shim)" | "node";
  /** Handshakes that resumed a session after all (should be 0); null when not counted. */
  resumed: number | null;
  errors: number;
  wrk?: WrkResult;
}

const SHIM_C = String.raw`/* LD_PRELOAD for wrk: never resume a TLS session; count resumptions that still happen. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
static int (*real_clear)(SSL *);
static int (*session_reused)(const SSL *);
static int (*set_session)(SSL *, SSL_SESSION *);
static long resumed;
__attribute__((constructor)) static void init(void) {
  real_clear = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
  session_reused = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_session_reused");
  set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
}
/* wrk calls SSL_clear after each connection (and libssl before each handshake): drop the session. */
int SSL_clear(SSL *s) {
  if (session_reused && session_reused(s)) __atomic_add_fetch(&resumed, 1, __ATOMIC_RELAXED);
  int r = real_clear ? real_clear(s) : 0;
  if (set_session) set_session(s, NULL);
  return r;
}
__attribute__((destructor)) static void report(void) {
  const char *p = getenv("BENCH_WRK_SHIM_REPORT");
  FILE *f = p ? fopen(p, "w") : NULL;
  if (f) {
    fprintf(f, "%ld %d\n", resumed, real_clear != NULL && session_reused != NULL && set_session != NULL);
    fclose(f);
  }
}
`;

/** Compile the shim into `dir`; returns its path, or the reason it could not be built. */
export function buildNoResumeShim(dir: string): { path: string } | { reason: string } {
  const cc = which("cc") ?? which("gcc") ?? which("clang");
  if (!cc) return { reason: "no C compiler (cc) to build wrk's no-resumption shim" };
  const src = join(dir, "wrk-no-resume.c");
  const out = join(dir, "wrk-no-resume.so");
  writeFileSync(src, SHIM_C);
  const r = runSync(cc, ["-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"], 60_000);
  if (r.code !== 0 || !existsSync(out)) return { reason: `cc failed to build the shim: ${(r.error ?? r.stderr).trim().slice(0, 300)}` };
  return { path: out };
}

async function viaWrk(
  children: Children,
  wrk: string,
  shim: string,
  reportDir: string,
  url: string,
  connections: number,
  threads: number,
  durationS: number,
): Promise<Omit<HandshakeResult, "cpuMsPerHandshake">> {
  const report = join(reportDir, `wrk-shim-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const result = await runWrk(children, wrk, {
    url,
    connections,
    threads,
    durationS,
    headers: ["Connection: close"],
    env: { LD_PRELOAD: shim, BENCH_WRK_SHIM_REPORT: report },
  });
  let resumed: number | null = null;
  try {
    const [count, loaded] = readFileSync(report, "utf8").trim().split(" ");
    if (loaded !== "1") throw new Error("the shim did not find SSL_clear / SSL_set_session in wrk");
    resumed = Number(count);
  } catch (e) {
    throw new Error(`wrk's no-resumption shim did not report (${(e as Error).message}): cannot tell full handshakes from resumed ones`);
  }
  const e = result.socketErrors;
  return { perSec: result.rps, handshakes: result.requests, client: "wrk (no-resumption shim)", resumed, errors: result.non2xx + e.connect + e.read + e.write + e.timeout, wrk: result };
}

/** Fallback client: `connections` loops of connect → GET → read to close, for `durationS`. */
async function viaNode(url: string, connections: number, durationS: number): Promise<Omit<HandshakeResult, "cpuMsPerHandshake">> {
  const u = new URL(url);
  const port = Number(u.port);
  const request = `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`;
  // One context for all: creating one per connection would load the CA store every time.
  const secureContext = tls.createSecureContext({ minVersion: "TLSv1.3" });
  let ok = 0;
  let errors = 0;
  let resumed = 0;
  const t0 = performance.now();
  const endAt = t0 + durationS * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      let status = "";
      const s = tls.connect({ host: LOOPBACK, port, secureContext, rejectUnauthorized: false }, () => {
        if (s.isSessionReused()) resumed++;
        s.write(request);
      });
      s.setTimeout(10_000, () => s.destroy(new Error("timeout")));
      s.on("data", (b: Buffer) => {
        if (status === "") status = b.subarray(0, 12).toString("latin1");
      });
      s.on("end", () => {
        if (status.startsWith("HTTP/1.1 200")) ok++;
        else errors++;
        s.destroy();
        resolve();
      });
      s.on("error", () => {
        errors++;
        resolve();
      });
    });
  const loop = async (): Promise<void> => {
    for (let i = 0; i < 1_000_000 && performance.now() < endAt; i++) await one();
  };
  await Promise.all(Array.from({ length: connections }, loop));
  const seconds = (performance.now() - t0) / 1000;
  return { perSec: ok / seconds, handshakes: ok, client: "node", resumed, errors };
}

export async function measureHandshakes(
  children: Children,
  opts: { wrk: string | null; shim: string | null; tmp: string; url: string; serverPid: number; connections: number; threads: number; durationS: number },
): Promise<HandshakeResult> {
  const { wrk, shim } = opts;
  const { result, cpuS } = await cpuDuring(opts.serverPid, () =>
    wrk && shim ? viaWrk(children, wrk, shim, opts.tmp, opts.url, opts.connections, opts.threads, opts.durationS) : viaNode(opts.url, opts.connections, opts.durationS),
  );
  return { ...result, cpuMsPerHandshake: cpuS === null || result.handshakes === 0 ? null : (cpuS * 1000) / result.handshakes };
}
