/**
 * `attestable-mcp bridge`: a local MCP endpoint for clients that cannot check attestation
 * themselves. The remote is verified before anything is forwarded; every later connection goes
 * through the attested agent, so a changed certificate is verified again, and a rejection ends the
 * bridge (exit 1) with the failed check on stderr. `--stdio` relays each message of whatever MCP
 * era the desktop client speaks, unchanged, one HTTP exchange per message (relay.ts); `--listen`
 * (listen.ts) is a plain HTTP forwarder on loopback.
 */
import type { Readable, Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { BridgeError } from "../../core/errors.js";
import { isLoopback } from "../../core/schema.js";
import type { Policy } from "../../evidence/policy.js";
import { attestedFetch, rejectionOf, verifyRemote, type ConnectionVerdict } from "../connector.js";
import type { BearerSource } from "./bearer-file.js";
import { LineSplitter } from "./frames.js";
import { errorText, type Fetch, HttpRelay } from "./relay.js";

/** Its codes (REMOTE_INVALID, LISTEN_INVALID, LISTEN_NOT_LOOPBACK, REMOTE_UNREACHABLE) all exit 2. */
export { BridgeError };

export type Log = (line: string) => void;

export interface BridgeCommon {
  remote: URL;
  policy: Policy;
  /** One line per call, to stderr in the CLI: stdout belongs to MCP in stdio mode. */
  log: Log;
  /** Bound for the first connection (verifyRemote) and each later one. */
  connectTimeoutMs?: number;
  /** --bearer-file's token source: its token is sent as Authorization on every request to the remote. */
  bearer?: BearerSource | undefined;
}

const CLOSE_BOUND_MS = 3000;

export function parseRemote(s: string): URL {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new BridgeError("REMOTE_INVALID", `--remote: "${s}" is not a URL`);
  }
  // The point of the bridge is the RA-TLS check; there is nothing to check over plain HTTP.
  if (u.protocol !== "https:") throw new BridgeError("REMOTE_INVALID", `--remote must be an https: URL (the remote is an RA-TLS proxy), got ${u.protocol}`);
  return u;
}

/** HOST:PORT or [V6]:PORT, loopback only: the HTTP side is plain text and unauthenticated. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (!m) throw new BridgeError("LISTEN_INVALID", `--listen expects HOST:PORT (e.g. 127.0.0.1:8080), got "${s}"`);
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) throw new BridgeError("LISTEN_INVALID", `--listen: port ${port} is out of range`);
  if (!isLoopback(host))
    throw new BridgeError("LISTEN_NOT_LOOPBACK", `--listen: ${host} is not a loopback address; the bridge serves plain, unauthenticated HTTP and listens on loopback only (127.0.0.1, ::1, localhost)`);
  return { host, port };
}

/** "check: reason" for a verdict that failed, the line stderr and error answers carry. */
export function describeRejection(v: ConnectionVerdict): string {
  if (v.failed) return `${v.failed.check}: ${v.failed.reason}`;
  if (!v.freshness.ok) return `freshness.${v.freshness.mode}: ${v.freshness.detail}`;
  return "rejected (no check named)";
}

export function describeAccepted(v: ConnectionVerdict): string {
  const q = v.quote;
  const id =
    q === null ? "" : q.teeType === "SGX" ? `mrenclave ${q.mrenclave}, mrsigner ${q.mrsigner}, isvSvn ${q.isvSvn}` : `TD mrtd ${q.mrtd}, rtmr0..3 ${q.rtmr.map((r) => `${r.slice(0, 16)}…`).join(" ")}`;
  return `${id ? `${id}${q?.debug ? ", DEBUG" : ""}, ` : ""}${v.dev ? "dev evidence, " : ""}freshness ${v.freshness.mode}, certificate sha256 ${v.fingerprint}`;
}

/**
 * The first check, before anything is listened on or relayed. Resolves with the verdict (ok or
 * not); a remote that cannot be reached at all is a start-up error (exit 2), not a rejection.
 */
export async function checkRemote(o: BridgeCommon): Promise<ConnectionVerdict> {
  // A remote still busy after one connect bound (429 / 503 waited out) is asked again a few
  // times: busy is never a rejection, and past the last try it is a start-up error (exit 2).
  for (let attempt = 1; ; attempt++) {
    let v: ConnectionVerdict;
    try {
      v = await verifyRemote(o.remote, { policy: o.policy, ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}) });
    } catch (e) {
      const r = rejectionOf(e);
      if (r) return r.verdict;
      throw new BridgeError("REMOTE_UNREACHABLE", `cannot reach ${o.remote.origin}: ${errorText(e)}`);
    }
    if (!v.freshness.busy) return v;
    if (attempt >= BUSY_START_ATTEMPTS) throw new BridgeError("REMOTE_UNREACHABLE", `${o.remote.origin} stayed busy (${v.failed?.reason ?? "429 / 503"}) through ${attempt} tries`);
  }
}

/** How many connect bounds a bridge spends on a busy remote at start before giving up. */
const BUSY_START_ATTEMPTS = 4;

export { errorText };

/** Logs each certificate the agent accepts once, and reports the first rejection. */
export function verdictWatcher(log: Log, first: ConnectionVerdict, onReject: (v: ConnectionVerdict) => void): (v: ConnectionVerdict) => void {
  const seen = new Set<string>([first.fingerprint]);
  return (v) => {
    // A busy remote failed no check: that one connection's request fails, the bridge goes on.
    if (!v.ok && v.freshness.busy) return log(`the remote is busy: ${v.failed?.reason ?? "429 / 503"}`);
    if (!v.ok) return onReject(v);
    if (seen.has(v.fingerprint)) return;
    seen.add(v.fingerprint);
    log(`remote verified: ${describeAccepted(v)}`);
  };
}

/** Resolves on the first of SIGINT / SIGTERM; the returned function removes the handlers. */
export function onSignals(handler: (signal: string) => void): () => void {
  const h = (signal: NodeJS.Signals): void => handler(signal);
  process.once("SIGINT", h);
  process.once("SIGTERM", h);
  return () => {
    process.off("SIGINT", h);
    process.off("SIGTERM", h);
  };
}

export function bounded<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(t));
}

export interface StdioBridgeOptions extends BridgeCommon {
  stdin?: Readable;
  stdout?: Writable;
  /** Install SIGINT / SIGTERM handlers (the CLI does; tests in-process do not). */
  signals?: boolean;
}

/**
 * The stdio bridge. Resolves with the exit code: 0 when stdin closes or on a signal, 1 when the
 * remote fails attestation (at start or later).
 */
export async function runStdioBridge(o: StdioBridgeOptions): Promise<number> {
  const first = await checkRemote(o);
  if (!first.ok) {
    o.log(`the remote failed attestation, nothing was forwarded: ${describeRejection(first)}`);
    return 1;
  }
  o.log(`remote verified: ${describeAccepted(first)}`);

  const stdin = o.stdin ?? process.stdin;
  const stdout = o.stdout ?? process.stdout;
  let finish!: (code: number) => void;
  const finished = new Promise<number>((r) => (finish = r));
  let state: "running" | "closing" = "running";

  const reject = (v: ConnectionVerdict): void => {
    if (state !== "running") return;
    const why = describeRejection(v);
    o.log(`the remote failed attestation, closing the bridge: ${why}`);
    // The desktop client learns why its calls end rather than waiting for a timeout.
    relay.failAll(`attestable-mcp bridge: the remote failed attestation (${why})`);
    void shutdown(1, false);
  };

  const af = attestedFetch({ policy: o.policy, onVerdict: verdictWatcher(o.log, first, reject), ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}) });
  const relay = new HttpRelay({
    url: new URL(o.remote.href),
    fetch: o.bearer === undefined ? af : withBearer(af, o.bearer),
    write: (line) => {
      if (state === "running") stdout.write(`${line}\n`);
    },
    log: o.log,
    onRejected: reject,
  });

  const shutdown = async (exitCode: number, endSession: boolean): Promise<void> => {
    if (state !== "running") return;
    state = "closing";
    stdin.off("data", onData);
    stdin.off("end", onStdinEnd);
    stdin.off("close", onStdinEnd);
    stdout.off("error", onStdoutError);
    // A session the bridge opened is the bridge's to end; a rejected remote gets nothing more.
    if (endSession)
      await bounded(
        relay.endSession().catch((e: unknown) => o.log(`ending the remote session: ${errorText(e)}`)),
        CLOSE_BOUND_MS,
      );
    relay.close();
    stdin.pause();
    await bounded(
      af.close().catch(() => {}),
      CLOSE_BOUND_MS,
    );
    finish(exitCode);
  };

  const lines = new LineSplitter((line) => {
    if (state === "running" && line.trim() !== "") relay.send(line);
  }, false);
  const decoder = new StringDecoder("utf8");
  const onData = (chunk: Buffer | string): void => lines.push(typeof chunk === "string" ? chunk : decoder.write(chunk));
  const onStdinEnd = (): void => {
    const rest = decoder.end() + lines.rest();
    if (state === "running" && rest.trim() !== "") relay.send(rest);
    o.log("stdin closed: ending the remote session");
    void shutdown(0, true);
  };
  const onStdoutError = (e: Error): void => {
    o.log(`stdout: ${e.message}: ending the remote session`);
    void shutdown(0, true);
  };
  stdin.on("data", onData);
  stdin.once("end", onStdinEnd);
  stdin.once("close", onStdinEnd);
  stdout.on("error", onStdoutError);
  const offSignals = o.signals
    ? onSignals((s) => {
        o.log(`${s}: ending the remote session`);
        void shutdown(0, true);
      })
    : () => {};

  const exit = await finished;
  offSignals();
  return exit;
}

/** Every request through `fetch` carries the token; whatever Authorization it had is replaced. */
function withBearer(fetch: Fetch, token: BearerSource): Fetch {
  return (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${token()}`);
    return fetch(input, { ...init, headers });
  };
}
