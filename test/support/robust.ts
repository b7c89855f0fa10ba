/**
 * Helpers for the robustness tests and the soak: `serve` spawned as the real command (so that its
 * file descriptors and children are its own, counted from /proc), clients pinned to the served
 * certificate, metrics scraping, SSE reading, and small statistics. Every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { join, resolve } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { derToPem } from "../../proxy/attest/build/x509.js";
import { servedCertificate } from "./tls-client.js";
import { freePort } from "./upstream.js";
import { CLI, DIST, REPO } from "./vectors.js";
import { eventually, tempDir, within } from "./wait.js";

export const UPSTREAM_SCRIPT = resolve(DIST, "test/support/robust-upstream.js");
export const STDIO_SCRIPT = resolve(DIST, "test/support/robust-stdio.js");

/** Open file descriptors of a process (Linux /proc). */
export function fdCount(pid: number = process.pid): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What the descriptors point at, for a failure message. */
export function fdTargets(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(`${fd}→${readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Live (not zombie) children of a process, from /proc/<pid>/task/<tid>/children. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8");
    } catch {
      continue;
    }
    for (const c of text.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        // Field 3 of stat is the state; after the command name in parentheses.
        const stat = readFileSync(`/proc/${c}/stat`, "utf8");
        if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z") out.push(c);
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

let sharedDevDir: string | undefined;
/** One dev PKI for every serve a test process spawns (creating it costs a few key generations). */
export function devDir(): string {
  sharedDevDir ??= join(tempDir("amcp-robust-dev-"), "dev");
  return sharedDevDir;
}

export interface SpawnedServe {
  child: ChildProcess;
  pid: number;
  port: number;
  metricsPort: number;
  certDer: Uint8Array;
  certPem: string;
  output(): string;
  /** Resolves with the exit code (or the signal) once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a bound; resolves once it is gone. */
  stop(): Promise<void>;
}

/**
 * `attestable-mcp serve` of this build, dev attestation with a P-256 key (cheaper handshakes for
 * floods), log at warn, metrics on a free port; `yaml` adds the upstream and anything else.
 */
export async function spawnServe(yaml: string, opts: { env?: NodeJS.ProcessEnv; startMs?: number } = {}): Promise<SpawnedServe> {
  const metricsPort = await freePort();
  const file = join(tempDir("amcp-robust-"), "serve.yaml");
  writeFileSync(
    file,
    `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir()}" } }\ncertificate: { keyType: P-256 }\nmetrics: { listen: "127.0.0.1:${metricsPort}" }\nlog: { level: warn }\n${yaml}`,
  );
  const child = spawn(process.execPath, [CLI, "serve", "--config", file], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer): void => {
    if (out.length < 256 * 1024) out += d.toString("utf8");
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    try {
      await within(exited, 15_000, "serve exit after SIGTERM");
    } catch {
      child.kill("SIGKILL");
      await within(exited, 5_000, "serve exit after SIGKILL");
    }
  };
  const started = await eventually(() => /serving https:\/\/127\.0\.0\.1:\d+/.test(out) || child.exitCode !== null, opts.startMs ?? 20_000);
  const port = Number(/serving https:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  if (!started || !(port > 0)) {
    await stop();
    throw new Error(`serve did not start:\n${out}`);
  }
  const certDer = await servedCertificate("127.0.0.1", port);
  return { child, pid: child.pid!, port, metricsPort, certDer, certPem: derToPem(certDer), output: () => out, exited, stop };
}

/** A keep-alive agent that trusts exactly the served certificate (as a client does after checking its evidence). */
export function pinnedAgent(certPem: string, opts: https.AgentOptions = {}): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets: Infinity, ca: certPem, checkServerIdentity: () => undefined, ...opts });
}

export interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  ms: number;
}

/** One request through `agent`; bounded. */
export function fetchVia(agent: https.Agent, port: number, path: string, init: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<Answer> {
  const t0 = performance.now();
  return within(
    new Promise<Answer>((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port, path, method: init.method ?? "GET", headers: init.headers, agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, ms: performance.now() - t0 }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(init.body);
    }),
    init.timeoutMs ?? 15_000,
    `${init.method ?? "GET"} ${path}`,
  );
}

/** The metrics text of a serve (no keep-alive: nothing of ours stays open in it). */
export function scrape(metricsPort: number): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port: metricsPort, path: "/metrics", agent: false, headers: { connection: "close" } }, (res) => {
          let t = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (t += c));
          res.on("end", () => resolve(t));
        })
        .on("error", reject);
    }),
    5000,
    "metrics scrape",
  );
}

/** A sample's value (0 when absent), e.g. metric(text, "attestable_mcp_tls_handshakes_total", 'result="failed"'). */
export function metric(text: string, name: string, labels = ""): number {
  const want = labels ? `${name}{${labels}}` : name;
  for (const line of text.split("\n")) {
    if (line.startsWith(want + " ")) return Number(line.slice(want.length + 1));
  }
  return 0;
}

export interface SseOutcome {
  /** The `i` of every data event, in arrival order. */
  seen: number[];
  /** The count announced by `event: end`, if it came. */
  announced: number | null;
  /** "end": the response ended cleanly; "aborted": it was cut; "error": the request failed. */
  how: "end" | "aborted" | "error";
  status: number;
  /** performance.now() of the last byte or of the cut. */
  at: number;
}

/**
 * Reads an SSE response of the robust upstream (through `agent`), calling `onEvent` per data event;
 * resolves when the response ends or is cut. `signal` aborts it from our side.
 */
export function readSse(agent: https.Agent, port: number, path: string, onEvent?: (i: number) => void, signal?: AbortSignal): Promise<SseOutcome> {
  return new Promise((resolve) => {
    const out: SseOutcome = { seen: [], announced: null, how: "error", status: 0, at: 0 };
    let buf = "";
    let done = false;
    const finish = (how: SseOutcome["how"]): void => {
      if (done) return;
      done = true;
      out.how = how;
      out.at = performance.now();
      resolve(out);
    };
    const req = https.request({ host: "127.0.0.1", port, path, agent, headers: { accept: "text/event-stream" }, signal }, (res) => {
      out.status = res.statusCode ?? 0;
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        buf += c;
        let cut: number;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (event === "end") out.announced = Number(data);
          else if (data) {
            const i = (JSON.parse(data) as { i: number }).i;
            out.seen.push(i);
            onEvent?.(i);
          }
        }
      });
      res.on("end", () => finish("end"));
      res.on("aborted", () => finish("aborted"));
      res.on("error", () => finish("aborted"));
      res.on("close", () => finish(res.complete ? "end" : "aborted"));
    });
    req.on("error", () => finish(out.status ? "aborted" : "error"));
    req.end();
  });
}

/** Checks that `seen` is exactly 0..n-1 in order; returns the problems found (none: []). */
export function sequenceProblems(seen: number[], n: number): string[] {
  const problems: string[] = [];
  if (seen.length !== n) problems.push(`${seen.length} events, expected ${n}`);
  for (let j = 0; j < seen.length && problems.length < 5; j++) if (seen[j] !== j) problems.push(`event #${j} is ${seen[j]}`);
  return problems;
}

/** The robust upstream as its own process, on `port` (0: any); resolves once it listens. */
export async function spawnUpstream(port = 0): Promise<{ child: ChildProcess; port: number; kill: (sig?: NodeJS.Signals) => Promise<void> }> {
  const child = spawn(process.execPath, [UPSTREAM_SCRIPT, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let line = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (c: string) => (line += c));
  const ok = await eventually(() => line.includes("\n") || child.exitCode !== null, 10_000, 20);
  const got = ok ? (JSON.parse(line.split("\n")[0]!) as { port: number }).port : 0;
  if (!(got > 0)) {
    child.kill("SIGKILL");
    throw new Error("robust upstream did not start");
  }
  return {
    child,
    port: got,
    kill: async (sig = "SIGKILL") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      await within(exited, 5000, "upstream exit");
    },
  };
}

/** GET /stats of a robust upstream, directly (not through serve). */
export function upstreamStats(port: number): Promise<{ requests: number; bytes: number; completed: number; sent: Record<string, number> }> {
  return within(
    new Promise((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path: "/stats", agent: false }, (res) => {
          let t = "";
          res.on("data", (c) => (t += c));
          res.on("end", () => resolve(JSON.parse(t)));
        })
        .on("error", reject);
    }),
    5000,
    "upstream stats",
  );
}

/**
 * Writes `text` on a TLS connection pinned to serve's certificate and reads until `enough` says the
 * answer is in (then closes) or the server closes; resolves with everything read (latin1).
 */
export function rawExchange(s: SpawnedServe, text: string, enough: (got: string) => boolean, ms = 10_000): Promise<string> {
  return within(
    new Promise((resolve) => {
      let got = "";
      const sock = tlsConnect({ host: "127.0.0.1", port: s.port, ca: s.certPem, checkServerIdentity: () => undefined }, () => sock.write(text));
      sock.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        if (enough(got)) sock.end();
      });
      sock.on("error", () => {});
      sock.on("close", () => resolve(got));
    }),
    ms,
    "raw exchange",
  );
}
