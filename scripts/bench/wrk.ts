/**
 * wrk as a child process, and its report parsed: requests per second, p50/p99 latency (from
 * `--latency`), request count, errors. wrk does not verify certificates, so self-signed and RA-TLS
 * certificates work as they are. Bounded: the child is killed `durationS + 20` seconds in.
 */
import type { Children } from "./proc.js";

export interface WrkResult {
  url: string;
  connections: number;
  threads: number;
  durationS: number;
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

export interface WrkOptions {
  url: string;
  connections: number;
  threads: number;
  durationS: number;
  headers?: string[];
  /** Extra environment for wrk (the handshake phase preloads its no-resumption shim). */
  env?: NodeJS.ProcessEnv;
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "1.23ms" → 1.23; "850.00us" → 0.85 (milliseconds). */
export function parseWrkTime(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
  if (!m) throw new Error(`wrk: cannot read the time "${s}"`);
  return Number(m[1]) * TIME_UNITS[m[2]!]!;
}

export function parseWrk(text: string, opts: WrkOptions): WrkResult {
  const num = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(text);
    if (!m) throw new Error(`wrk: no ${what} in its output:\n${text.slice(-1500)}`);
    return m;
  };
  const total = num(/(\d+) requests in ([\d.]+)(us|ms|s|m)/, "request count");
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    url: opts.url,
    connections: opts.connections,
    threads: opts.threads,
    durationS: opts.durationS,
    requests: Number(total[1]),
    seconds: parseWrkTime(`${total[2]}${total[3]}`) / 1000,
    rps: Number(num(/Requests\/sec:\s+([\d.]+)/, "Requests/sec")[1]),
    p50Ms: parseWrkTime(num(/^\s*50(?:\.0+)?%\s+(\S+)/m, "p50")[1]!),
    p99Ms: parseWrkTime(num(/^\s*99(?:\.0+)?%\s+(\S+)/m, "p99")[1]!),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    socketErrors: {
      connect: Number(se?.[1] ?? 0),
      read: Number(se?.[2] ?? 0),
      write: Number(se?.[3] ?? 0),
      timeout: Number(se?.[4] ?? 0),
    },
  };
}

export async function runWrk(children: Children, wrk: string, opts: WrkOptions): Promise<WrkResult> {
  const args = ["-t", String(opts.threads), "-c", String(opts.connections), "-d", `${opts.durationS}s`, "--latency"];
  for (const h of opts.headers ?? []) args.push("-H", h);
  args.push(opts.url);
  const proc = children.spawn("wrk", wrk, args, opts.env ? { env: { ...process.env, ...opts.env } } : {});
  let out = "";
  proc.child.stdout!.on("data", (b: Buffer) => (out += b.toString("utf8")));
  const killer = setTimeout(() => void children.stop(proc, 500), (opts.durationS + 20) * 1000);
  try {
    const code = await proc.exited;
    if (code !== 0) throw new Error(`wrk exited with ${code}: ${proc.output().slice(-1500)}`);
    return parseWrk(out, opts);
  } finally {
    clearTimeout(killer);
  }
}

/** Errors worth a warning: anything but a clean run. */
export function wrkProblems(r: WrkResult): string | null {
  const e = r.socketErrors;
  const n = e.connect + e.read + e.write + e.timeout;
  if (r.non2xx === 0 && n === 0) return null;
  return `${r.url}: ${r.non2xx} non-2xx responses, socket errors connect ${e.connect} read ${e.read} write ${e.write} timeout ${e.timeout}`;
}
