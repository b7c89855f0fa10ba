/**
 * Child processes of the benchmark and what /proc says about them.
 *
 * Every process the benchmark starts goes through `Children.spawn`: it runs in its own process
 * group (so nginx's master and worker go together), its output is drained (a full pipe would stall
 * it), and `stopAll` ends every group still alive: SIGTERM, then SIGKILL after a bound.
 * `killAllSync` is for `process.on("exit")`, where nothing asynchronous runs.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { delimiter, join } from "node:path";
// The suite's bounded waits, one copy for tests and benchmarks alike.
import { sleep, within } from "../../test/support/wait.js";

export { sleep, within };

export const LOOPBACK = "127.0.0.1";

export interface Tracked {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>;
  /** The last 16 KiB of its stdout and stderr, for error messages. */
  output(): string;
}

export class Children {
  private readonly live = new Set<Tracked>();
  /** Set by stopAll: nothing new starts once the run is being torn down. */
  private closing = false;

  spawn(name: string, command: string, args: string[], opts: SpawnOptions = {}): Tracked {
    if (this.closing) throw new Error(`${name}: not started, the benchmark is stopping`);
    const child = spawn(command, args, { ...opts, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    if (child.pid === undefined) {
      // spawn failed synchronously (ENOENT arrives as an 'error' event): surface it.
      child.on("error", () => undefined);
      throw new Error(`${name}: could not start ${command}`);
    }
    let tail = "";
    const keep = (b: Buffer): void => {
      tail = (tail + b.toString("utf8")).slice(-16_384);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.on("error", (e) => keep(Buffer.from(`\n[${name}: ${e.message}]\n`)));
    const exited = new Promise<number | string>((resolve) => {
      child.once("exit", (code, signal) => resolve(code ?? signal ?? "?"));
    });
    const t: Tracked = { name, child, pid: child.pid, exited, output: () => tail };
    this.live.add(t);
    void exited.then(() => this.live.delete(t));
    return t;
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(t: Tracked, graceMs = 3000): Promise<void> {
    if (!this.live.has(t)) return;
    signalGroup(t.pid, "SIGTERM");
    const done = await Promise.race([t.exited.then(() => true), sleep(graceMs).then(() => false)]);
    // The leader may be gone while the group lives on (an nginx worker): kill the group anyway.
    signalGroup(t.pid, "SIGKILL");
    if (!done) await Promise.race([t.exited, sleep(1000)]);
    this.live.delete(t);
  }

  async stopAll(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.live].map((t) => this.stop(t)));
  }

  /** For process.on("exit"): synchronous, no waiting. */
  killAllSync(): void {
    this.closing = true;
    for (const t of this.live) signalGroup(t.pid, "SIGKILL");
    this.live.clear();
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Run a command to completion (bounded), capturing its output. */
export function runSync(command: string, args: string[], timeoutMs = 30_000, env?: NodeJS.ProcessEnv): { code: number | null; stdout: string; stderr: string; error?: string } {
  const r = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024, ...(env ? { env } : {}) });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ...(r.error ? { error: r.error.message } : {}) };
}

/** Resolve a program on PATH (plus the sbin directories, where Debian puts nginx); null if absent. */
export function which(program: string): string | null {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

let clockTicks: number | null = null;
function ticksPerSecond(): number {
  if (clockTicks === null) {
    const r = runSync("getconf", ["CLK_TCK"], 5000);
    const n = Number(r.stdout.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** User + system CPU seconds a process has used so far (all its threads), from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // comm (field 2) may hold spaces and parentheses: fields after the last ')' are fixed.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Resident set size in MB (MiB) from /proc/<pid>/status VmRSS. */
export function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Pids whose parent is `pid` (nginx's workers), by scanning /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** A port that was free a moment ago (for nginx, which cannot report an ephemeral port). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, LOOPBACK, () => resolve());
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Poll until a TCP connect to the port succeeds; bounded by `timeoutMs` and `stillAlive`. */
export async function waitForPort(port: number, timeoutMs: number, stillAlive: () => boolean): Promise<void> {
  const t0 = Date.now();
  for (let i = 0; i < 1000 && Date.now() - t0 < timeoutMs; i++) {
    if (!stillAlive()) throw new Error(`process exited before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, LOOPBACK);
      c.once("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${LOOPBACK}:${port} after ${timeoutMs} ms`);
}

/** Resolve with the first match of `re` in a stream's text; bounded by `timeoutMs`. */
export function waitForMatch(stream: NodeJS.ReadableStream, re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = "";
    const onData = (b: Buffer | string): void => {
      text = (text + b.toString()).slice(-65_536);
      const m = re.exec(text);
      if (m) {
        cleanup();
        resolve(m);
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`${what}: stream ended before ${re} appeared; output: ${text.slice(-2000)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: ${re} did not appear within ${timeoutMs} ms; output: ${text.slice(-2000)}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
    };
    stream.on("data", onData);
    stream.once("end", onEnd);
  });
}

/**
 * Run `fn` and return its result with the CPU seconds `pid` used meanwhile (null if unreadable);
 * with `tree`, its child processes' too (serve's cluster workers, which do all the work).
 */
export async function cpuDuring<T>(pid: number | null, fn: () => Promise<T>, tree = false): Promise<{ result: T; cpuS: number | null }> {
  const read = (): number | null => {
    if (pid === null) return null;
    try {
      return [pid, ...(tree ? childPids(pid) : [])].reduce((a, p) => a + cpuSeconds(p), 0);
    } catch {
      return null;
    }
  };
  const before = read();
  const result = await fn();
  const after = read();
  return { result, cpuS: before === null || after === null ? null : after - before };
}
