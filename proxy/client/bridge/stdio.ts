/**
 * `attestable-mcp bridge`: a local MCP endpoint for clients that cannot check attestation
 * themselves. The remote is verified before anything is forwarded; every later connection goes
 * through the attested agent, so a changed certificate is verified again, and a rejection ends the
 * bridge (exit 1) with the failed check on stderr. `--stdio` relays at the transport level (no
 * protocol objects, messages unchanged both ways); `--listen` (bridge-http.ts) is a plain HTTP
 * forwarder on loopback.
 */
import type { Readable, Writable } from "node:stream";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { isJSONRPCErrorResponse, isJSONRPCRequest, isJSONRPCResultResponse, type JSONRPCMessage, type RequestId } from "@modelcontextprotocol/sdk/types.js";
import { BridgeError } from "../../core/errors.js";
import { isLoopback } from "../../core/schema.js";
import type { Policy } from "../../evidence/policy.js";
import { attestedFetch, rejectionOf, verifyRemote, type ConnectionVerdict } from "../connector.js";

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
  return `${q?.teeType === "SGX" ? `mrenclave ${q.mrenclave}, mrsigner ${q.mrsigner}, isvSvn ${q.isvSvn}${q.debug ? ", DEBUG" : ""}, ` : ""}${v.dev ? "dev evidence, " : ""}freshness ${v.freshness.mode}, certificate sha256 ${v.fingerprint}`;
}

/**
 * The first check, before anything is listened on or relayed. Resolves with the verdict (ok or
 * not); a remote that cannot be reached at all is a start-up error (exit 2), not a rejection.
 */
export async function checkRemote(o: BridgeCommon): Promise<ConnectionVerdict> {
  try {
    return await verifyRemote(o.remote, { policy: o.policy, ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}) });
  } catch (e) {
    const r = rejectionOf(e);
    if (r) return r.verdict;
    throw new BridgeError("REMOTE_UNREACHABLE", `cannot reach ${o.remote.origin}: ${errorText(e)}`);
  }
}

export function errorText(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  // fetch wraps the real reason ("ECONNREFUSED", a TLS alert) in `cause`.
  for (let i = 0; cur instanceof Error && i < 5; i++, cur = cur.cause) {
    if (!parts.includes(cur.message)) parts.push(cur.message);
  }
  return parts.length ? parts.join(": ") : String(e);
}

/** Logs each certificate the agent accepts once, and reports the first rejection. */
export function verdictWatcher(log: Log, first: ConnectionVerdict, onReject: (v: ConnectionVerdict) => void): (v: ConnectionVerdict) => void {
  const seen = new Set<string>([first.fingerprint]);
  return (v) => {
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

/** JSON-RPC "server error" range, used for answers the bridge itself gives. */
const BRIDGE_ERROR = -32000;

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

  /** Requests from the local client the remote has not answered yet: id → method. */
  const pending = new Map<RequestId, string>();
  const initializeIds = new Set<RequestId>();
  const local = new StdioServerTransport(stdin, stdout);

  const answerError = (id: RequestId, message: string): void => {
    if (!pending.delete(id)) return;
    void local.send({ jsonrpc: "2.0", id, error: { code: BRIDGE_ERROR, message } }).catch(() => {});
  };

  const reject = (v: ConnectionVerdict): void => {
    if (state !== "running") return;
    const why = describeRejection(v);
    o.log(`the remote failed attestation, closing the bridge: ${why}`);
    // The desktop client learns why its calls end rather than waiting for a timeout.
    for (const id of [...pending.keys()]) answerError(id, `attestable-mcp bridge: the remote failed attestation (${why})`);
    void shutdown(1, false);
  };

  const af = attestedFetch({ policy: o.policy, onVerdict: verdictWatcher(o.log, first, reject), ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}) });
  const remote = new StreamableHTTPClientTransport(new URL(o.remote.href), { fetch: af });

  const shutdown = async (code: number, endSession: boolean): Promise<void> => {
    if (state !== "running") return;
    state = "closing";
    stdin.off("end", onStdinEnd);
    stdin.off("close", onStdinEnd);
    stdout.off("error", onStdoutError);
    // A session the bridge opened is the bridge's to end; a rejected remote gets nothing more.
    if (endSession && remote.sessionId)
      await bounded(
        remote.terminateSession().catch(() => {}),
        CLOSE_BOUND_MS,
      );
    await remote.close().catch(() => {});
    await local.close().catch(() => {});
    await bounded(
      af.close().catch(() => {}),
      CLOSE_BOUND_MS,
    );
    finish(code);
  };

  // initialize must have its answer (and with it the session id) before anything else is sent.
  let gate: Promise<unknown> = Promise.resolve();
  const forward = async (m: JSONRPCMessage): Promise<void> => {
    if (state !== "running") return;
    if (isJSONRPCRequest(m)) {
      pending.set(m.id, m.method);
      if (m.method === "initialize") initializeIds.add(m.id);
    }
    let sent: Promise<void>;
    if (isJSONRPCRequest(m) && m.method === "initialize") {
      sent = gate.then(() => remote.send(m));
      gate = sent.catch(() => {});
    } else {
      sent = gate.then(() => remote.send(m));
    }
    try {
      await sent;
    } catch (e) {
      const r = rejectionOf(e);
      if (r) return reject(r.verdict);
      if (state !== "running") return;
      const what = isJSONRPCRequest(m) ? `${m.method} (id ${String(m.id)})` : "method" in m ? m.method : "a response";
      o.log(`forwarding ${what} failed: ${errorText(e)}`);
      if (isJSONRPCRequest(m)) answerError(m.id, `attestable-mcp bridge: the remote did not take the request: ${errorText(e)}`);
    }
  };

  local.onmessage = (m) => void forward(m);
  local.onerror = (e) => o.log(`stdin: ${errorText(e)}`);
  remote.onmessage = (m) => {
    if (isJSONRPCResultResponse(m) || isJSONRPCErrorResponse(m)) {
      if (m.id !== undefined) pending.delete(m.id);
      // The transport is driven without the SDK Client, which would do this itself.
      if (isJSONRPCResultResponse(m) && initializeIds.delete(m.id)) {
        const v = (m.result as { protocolVersion?: unknown }).protocolVersion;
        if (typeof v === "string") remote.setProtocolVersion(v);
      }
    }
    void local.send(m).catch(() => {});
  };
  remote.onerror = (e) => {
    const r = rejectionOf(e);
    if (r) return reject(r.verdict);
    if (state === "running" && !(e instanceof Error && e.name === "AbortError")) o.log(`remote: ${errorText(e)}`);
  };

  const onStdinEnd = (): void => {
    o.log("stdin closed: ending the remote session");
    void shutdown(0, true);
  };
  const onStdoutError = (e: Error): void => {
    o.log(`stdout: ${e.message}: ending the remote session`);
    void shutdown(0, true);
  };
  stdin.once("end", onStdinEnd);
  stdin.once("close", onStdinEnd);
  stdout.on("error", onStdoutError);
  const offSignals = o.signals
    ? onSignals((s) => {
        o.log(`${s}: ending the remote session`);
        void shutdown(0, true);
      })
    : () => {};

  await remote.start();
  await local.start();
  const code = await finished;
  offSignals();
  return code;
}
