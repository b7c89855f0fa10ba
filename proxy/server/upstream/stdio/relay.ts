/**
 * stdio upstreams: serve an MCP server that speaks stdio (a command the proxy spawns) as MCP
 * Streamable HTTP at `/mcp`, and as the legacy HTTP+SSE transport at `GET /sse` +
 * `POST /message?sessionId=…`.
 *
 * One child process per MCP session. The proxy is a relay, not an MCP peer: JSON-RPC messages go
 * between the SDK's HTTP-side server transport and the child's stdio client transport unchanged
 * (no `Server`/`Client` protocol object), so methods the proxy does not know pass through as well.
 * The only thing the relay looks at is routing: which HTTP stream a message from the child belongs
 * on (a response on its request's stream, progress on the stream of the request that carried the
 * progress token, everything else on the standalone GET stream).
 */
import { randomUUID } from "node:crypto";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";
import type { ChildProcess } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { DEFAULT_INHERITED_ENV_VARS, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { isInitializeRequest, type JSONRPCMessage, type RequestId } from "@modelcontextprotocol/sdk/types.js";
import { noHooks, type ProxyHooks } from "../../hooks.js";

export interface StdioOptions {
  /** argv; command[0] is the executable. */
  command: string[];
  /** Added to a minimal environment (PATH, HOME); the proxy's own environment is not passed on. */
  env?: Record<string, string>;
  cwd?: string;
  /** Concurrent sessions (children); default 32; beyond → 503 with a JSON-RPC error body. */
  maxSessions?: number;
  /** A session without any request, relayed message or request awaiting its answer for this long ends (child killed); default 30 min. */
  sessionIdleMs?: number;
  /**
   * A child that sends nothing (no answer, no progress, no message at all) for this long while a
   * request waits is taken as hung: its session ends, waiting requests are answered with an error
   * and the child is killed; default 5 min (upstream.idleTimeout).
   */
  requestIdleMs?: number;
  /** Request body limit in bytes; default 4 MiB → 413 with a JSON-RPC error body. */
  bodyLimit?: number;
  log: Logger;
  hooks?: ProxyHooks;
}

export interface StdioUpstream {
  /** Handles /mcp, /sse and /message; returns false for other paths (the caller answers 404). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  sessions(): number;
  /** End every session and child (SIGTERM, then SIGKILL after a bound). */
  close(): Promise<void>;
}

const DEFAULT_MAX_SESSIONS = 32;
const DEFAULT_IDLE_MS = 30 * 60_000;
const DEFAULT_REQUEST_IDLE_MS = 5 * 60_000;
const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;
/** SIGTERM → SIGKILL. */
const KILL_GRACE_MS = 2_000;
/** After the child's `exit`, how long to wait for its stdout to drain (`close`) before ending anyway. */
const EXIT_DRAIN_MS = 1_000;
/** Longest stderr line logged as one record; longer lines are split. */
const STDERR_LINE_MAX = 8 * 1024;
/** Keep-alive comment on legacy SSE streams (the SDK's Streamable HTTP transport does its own). */
const LEGACY_SSE_KEEPALIVE_MS = 15_000;
/** Error code for requests that were pending when the child went away (SDK: ConnectionClosed). */
const CHILD_GONE_CODE = -32000;

type EndReason = "delete" | "idle" | "unresponsive" | "child-exit" | "stream-closed" | "shutdown" | "not-initialized" | "transport-error";

/** The HTTP side of a session: where messages from the child go. */
interface Downstream {
  send(message: JSONRPCMessage, relatedRequestId?: RequestId): Promise<void>;
  close(): Promise<void>;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads and parses a JSON body within `limit` bytes; on failure the response has been answered (or the request is gone). */
function readJsonBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<{ ok: true; value: unknown } | { ok: false }> {
  return new Promise((resolve) => {
    const declared = Number(headerValue(req, "content-length"));
    if (Number.isFinite(declared) && declared > limit) {
      sendJsonRpcError(res, 413, `Payload Too Large: request body must not exceed ${limit} bytes`, { Connection: "close" });
      resolve({ ok: false });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (r: { ok: true; value: unknown } | { ok: false }): void => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        sendJsonRpcError(res, 413, `Payload Too Large: request body must not exceed ${limit} bytes`, { Connection: "close" });
        finish({ ok: false });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      let value: unknown;
      try {
        value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        sendJsonRpcError(res, 400, "Parse error: Invalid JSON", {}, -32700);
        finish({ ok: false });
        return;
      }
      finish({ ok: true, value });
    };
    const onGone = (): void => finish({ ok: false });
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}

/**
 * Calls `onOpen`/`onClose` around an SSE response (whatever writes the head: the SDK goes through
 * @hono/node-server, which passes headers to writeHead directly, so getHeader cannot see them).
 */
function watchSse(res: ServerResponse, onOpen: () => void, onClose: () => void): void {
  const original = res.writeHead;
  const patched = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
    res.writeHead = original;
    const result = (original as (...a: unknown[]) => ServerResponse).apply(this, args);
    let ct: unknown = res.getHeader("content-type");
    for (const a of args.slice(1)) {
      if (Array.isArray(a)) {
        for (let i = 0; i + 1 < a.length; i += 2) if (String(a[i]).toLowerCase() === "content-type") ct = a[i + 1];
      } else if (a !== null && typeof a === "object") {
        for (const [k, v] of Object.entries(a)) if (k.toLowerCase() === "content-type") ct = v;
      }
    }
    if (typeof ct === "string" && ct.toLowerCase().startsWith("text/event-stream")) {
      onOpen();
      res.once("close", onClose);
    }
    return result;
  };
  res.writeHead = patched as typeof res.writeHead;
}

function isRequest(m: JSONRPCMessage): m is JSONRPCMessage & { method: string; id: RequestId } {
  return "method" in m && "id" in m && m.id !== undefined;
}
function isNotification(m: JSONRPCMessage): m is JSONRPCMessage & { method: string } {
  return "method" in m && !("id" in m);
}
function paramsOf(m: JSONRPCMessage): Record<string, unknown> | undefined {
  const p = (m as { params?: unknown }).params;
  return p !== null && typeof p === "object" ? (p as Record<string, unknown>) : undefined;
}
function isId(v: unknown): v is RequestId {
  return typeof v === "string" || typeof v === "number";
}

/** Splits a text stream into lines (each at most STDERR_LINE_MAX characters) and hands the non-empty ones to `emit`. */
function lineSplitter(stream: Readable, emit: (line: string) => void): void {
  let buf = "";
  const flush = (line: string): void => {
    const l = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (l.length > 0) emit(l);
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buf += chunk;
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0 && nl <= STDERR_LINE_MAX) {
        flush(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      } else if (buf.length > STDERR_LINE_MAX) {
        flush(buf.slice(0, STDERR_LINE_MAX));
        buf = buf.slice(STDERR_LINE_MAX);
      } else {
        break;
      }
    }
  });
  stream.on("end", () => {
    flush(buf);
    buf = "";
  });
  stream.on("error", () => {});
}

function childEnv(extra: Record<string, string> | undefined): Record<string, string> {
  // StdioClientTransport merges its own default environment (HOME, LOGNAME, PATH, SHELL, TERM,
  // USER) under ours; blank those out (spawn drops undefined values) so the child gets exactly
  // PATH, HOME and what the config adds.
  const env: Record<string, string | undefined> = {};
  for (const k of DEFAULT_INHERITED_ENV_VARS) env[k] = undefined;
  if (process.env.PATH !== undefined) env.PATH = process.env.PATH;
  if (process.env.HOME !== undefined) env.HOME = process.env.HOME;
  Object.assign(env, extra);
  return env as Record<string, string>;
}

function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}

export function createStdioUpstream(opts: StdioOptions): StdioUpstream {
  const [executable, ...args] = opts.command;
  if (executable === undefined || executable === "") throw new Error("stdio upstream: command must not be empty");
  const maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
  const idleMs = opts.sessionIdleMs ?? DEFAULT_IDLE_MS;
  const requestIdleMs = opts.requestIdleMs ?? DEFAULT_REQUEST_IDLE_MS;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const hooks = opts.hooks ?? noHooks;
  const log = opts.log;
  const env = childEnv(opts.env);

  /** Every live session, initialized or not (counts against maxSessions). */
  const all = new Set<Session>();
  /** Streamable HTTP sessions by Mcp-Session-Id (registered once the SDK has initialized them). */
  const streamable = new Map<string, Session>();
  /** Legacy SSE sessions by sessionId query parameter. */
  const legacy = new Map<string, Session>();
  let closing = false;

  class Session {
    readonly id: string;
    readonly kind: "streamable" | "sse";
    readonly child: StdioClientTransport;
    proc: ChildProcess | undefined;
    pid: number | undefined;
    down: Downstream | undefined;
    ended = false;
    /** Client requests forwarded to the child and not yet answered → their progress token. */
    readonly pending = new Map<RequestId, RequestId | undefined>();
    /** progressToken → the request that carried it. */
    readonly progress = new Map<RequestId, RequestId>();
    /** Open standalone GET streams (Streamable HTTP). */
    getStreams = 0;
    /** Open POST exchanges (Streamable HTTP): a client waiting on a request is not idle. */
    busy = 0;
    private lastActivity = Date.now();
    /** Since when a request has been waiting with nothing from the child, and the timer that judges it. */
    private lastFromChild = Date.now();
    private waitingSince = 0;
    /** Requests the child sent the client (sampling, elicitation): while one is open the child waits on the client, not hangs. */
    private readonly askedClient = new Set<RequestId>();
    private hangTimer: NodeJS.Timeout | undefined;
    private idleTimer: NodeJS.Timeout | undefined;
    private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    private goneResolve!: () => void;
    /** Resolves when the child is gone (stdio closed, or exited and drained). */
    readonly gone: Promise<void> = new Promise((r) => (this.goneResolve = r));
    private isGone = false;
    private started = false;
    private startPromise: Promise<void> | undefined;
    private endPromise: Promise<void> | undefined;

    constructor(id: string, kind: "streamable" | "sse") {
      this.id = id;
      this.kind = kind;
      this.child = new StdioClientTransport({
        command: executable!,
        args,
        env,
        cwd: opts.cwd,
        stderr: "pipe",
      });
      const stderr = this.child.stderr as Readable | null;
      if (stderr) lineSplitter(stderr, (line) => log.info({ session: id, stderr: line }));
      this.child.onmessage = (m) => this.fromChild(m);
      this.child.onerror = (err) => log.warn({ session: id, err: err.message }, "stdio child transport error");
      this.child.onclose = () => this.childGone();
    }

    start(): Promise<void> {
      this.startPromise ??= this.doStart();
      return this.startPromise;
    }

    private async doStart(): Promise<void> {
      await this.child.start();
      this.started = true;
      this.pid = this.child.pid ?? undefined;
      // The SDK keeps the ChildProcess private; it is needed for the exit code and signals.
      const proc = (this.child as unknown as { _process?: ChildProcess })._process;
      if (proc && typeof proc.once === "function") {
        this.proc = proc;
        proc.once("exit", (code, signal) => {
          this.exitInfo = { code, signal };
          // Normally `close` follows once stdout drained; a grandchild holding the pipe must not keep the session.
          const t = setTimeout(() => this.childGone(), EXIT_DRAIN_MS);
          t.unref();
        });
      }
      log.info({ session: this.id, pid: this.pid, kind: this.kind }, "stdio child started");
      this.armIdle();
    }

    touch(): void {
      this.lastActivity = Date.now();
    }

    private armIdle(): void {
      const wait = Math.min(2 ** 31 - 1, Math.max(1, this.lastActivity + idleMs - Date.now()));
      this.idleTimer = setTimeout(() => {
        if (this.ended) return;
        // A request still being waited for (an open POST stream; on legacy SSE, any unanswered
        // request, as the one stream is always open) keeps the session, however quiet.
        if (this.busy > 0 || (this.kind === "sse" && this.pending.size > 0)) this.touch();
        if (Date.now() - this.lastActivity >= idleMs) {
          log.info({ session: this.id }, "stdio session idle; ending");
          void this.end("idle");
        } else {
          this.armIdle();
        }
      }, wait);
      this.idleTimer.unref();
    }

    /** A message from the HTTP client, to the child. */
    fromClient(m: JSONRPCMessage): void {
      this.touch();
      if (isRequest(m)) {
        const meta = paramsOf(m)?._meta;
        const token = meta !== null && typeof meta === "object" ? (meta as Record<string, unknown>).progressToken : undefined;
        if (isId(token)) {
          this.pending.set(m.id, token);
          this.progress.set(token, m.id);
        } else {
          this.pending.set(m.id, undefined);
        }
        // The child's silence counts from the first request it owes, not from an earlier one it answered.
        if (this.pending.size === 1) this.waitingSince = Date.now();
        this.armHang();
      } else if (isNotification(m) && m.method === "notifications/cancelled") {
        const rid = paramsOf(m)?.requestId;
        if (isId(rid)) this.forget(rid);
      } else if (!("method" in m)) {
        const id = (m as { id?: unknown }).id;
        if (isId(id) && this.askedClient.delete(id)) this.waitingSince = Date.now();
      }
      this.child.send(m).catch((err: unknown) => {
        log.warn({ session: this.id, err: err instanceof Error ? err.message : String(err) }, "stdio child: write failed");
      });
    }

    /**
     * Without this a child that stops answering holds its clients' requests (and itself) until the
     * session idles out, which a waiting request postpones forever.
     */
    private armHang(): void {
      if (this.hangTimer || this.ended) return;
      const check = (): void => {
        this.hangTimer = undefined;
        if (this.ended || this.pending.size === 0) return;
        if (this.askedClient.size > 0) {
          this.hangTimer = setTimeout(check, requestIdleMs);
          this.hangTimer.unref();
          return;
        }
        const quietFor = Date.now() - Math.max(this.waitingSince, this.lastFromChild);
        if (quietFor < requestIdleMs) {
          this.hangTimer = setTimeout(check, requestIdleMs - quietFor);
          this.hangTimer.unref();
          return;
        }
        hooks.upstreamError("timeout");
        log.warn({ session: this.id, pid: this.pid, waiting: this.pending.size, quietMs: quietFor }, "stdio child sent nothing while requests waited; ending its session");
        void this.end("unresponsive");
      };
      this.hangTimer = setTimeout(check, requestIdleMs);
      this.hangTimer.unref();
    }

    /** A message from the child, to the HTTP client. */
    fromChild(m: JSONRPCMessage): void {
      this.touch();
      this.lastFromChild = Date.now();
      if (isRequest(m)) this.askedClient.add(m.id);
      const down = this.down;
      if (!down || this.ended) return;
      let related: RequestId | undefined;
      if (!("method" in m)) {
        // A response: the transport routes it by its own id.
        const id = (m as { id?: unknown }).id;
        if (isId(id)) this.forget(id);
      } else if (isNotification(m) && m.method === "notifications/progress") {
        const token = paramsOf(m)?.progressToken;
        related = isId(token) ? this.progress.get(token) : undefined;
        related ??= this.fallbackRelated();
      } else {
        // Other notifications and server-to-client requests (logging, sampling, elicitation,
        // roots): the standalone GET stream; if the client has none open, a stream still open
        // for one of its requests rather than nowhere.
        related = this.fallbackRelated();
      }
      down.send(m, related).catch((err: unknown) => {
        log.debug({ session: this.id, err: err instanceof Error ? err.message : String(err) }, "message from child not deliverable");
      });
    }

    private fallbackRelated(): RequestId | undefined {
      if (this.kind !== "streamable" || this.getStreams > 0) return undefined;
      let last: RequestId | undefined;
      for (const id of this.pending.keys()) last = id;
      return last;
    }

    private forget(id: RequestId): void {
      const token = this.pending.get(id);
      this.pending.delete(id);
      if (token !== undefined && this.progress.get(token) === id) this.progress.delete(token);
    }

    private childGone(): void {
      if (this.isGone) return;
      this.isGone = true;
      this.goneResolve();
      if (!this.started) return; // a spawn failure: start() rejects and its caller answers
      const info = { session: this.id, pid: this.pid, code: this.exitInfo?.code ?? null, signal: this.exitInfo?.signal ?? null };
      if (this.ended) {
        log.info(info, "stdio child exited");
      } else {
        hooks.upstreamError("child-exit");
        log.warn(info, "stdio child exited; ending its session");
        void this.end("child-exit");
      }
    }

    private signal(sig: NodeJS.Signals): void {
      if (this.isGone || this.exitInfo) return;
      try {
        if (this.proc) this.proc.kill(sig);
        else if (this.pid !== undefined) process.kill(this.pid, sig);
      } catch {
        // already gone
      }
    }

    /** Ends the session: HTTP streams closed, pending requests answered with an error, child ended. */
    end(reason: EndReason): Promise<void> {
      if (this.endPromise) return this.endPromise;
      // Synchronously out of every table: later requests for this session are answered 404.
      this.ended = true;
      if (this.idleTimer) clearTimeout(this.idleTimer);
      if (this.hangTimer) clearTimeout(this.hangTimer);
      all.delete(this);
      if (streamable.get(this.id) === this) streamable.delete(this.id);
      if (legacy.get(this.id) === this) legacy.delete(this.id);
      log.info({ session: this.id, reason }, "stdio session ended");
      // Closing the transports below calls their onclose, which comes back here: already set.
      this.endPromise = Promise.resolve().then(() => this.doEnd(reason));
      return this.endPromise;
    }

    private async doEnd(reason: EndReason): Promise<void> {
      const down = this.down;
      if (down) {
        // Requests still waiting get an answer instead of a stream that just ends.
        const message =
          reason === "child-exit"
            ? "MCP server process exited"
            : reason === "unresponsive"
              ? `MCP server sent nothing for ${requestIdleMs} ms while a request waited; session ended`
              : `MCP session ended (${reason})`;
        for (const id of [...this.pending.keys()]) {
          await down.send({ jsonrpc: "2.0", id, error: { code: CHILD_GONE_CODE, message } }, id).catch(() => {});
        }
        this.pending.clear();
        this.progress.clear();
        await down.close().catch(() => {});
      }
      // A child still being spawned is ended once it is there.
      if (this.startPromise && !this.started) await bounded(this.startPromise, KILL_GRACE_MS);
      if (this.started && !this.isGone) {
        // stdin closed, SIGTERM now, SIGKILL after a bound.
        try {
          this.proc?.stdin?.end();
        } catch {
          // ignore
        }
        this.signal("SIGTERM");
        const killer = setTimeout(() => this.signal("SIGKILL"), KILL_GRACE_MS);
        killer.unref();
        void this.gone.then(() => clearTimeout(killer));
        void this.child.close().catch(() => {});
        await bounded(this.gone, KILL_GRACE_MS + 1_000);
      }
    }
  }

  function admit(res: ServerResponse): boolean {
    if (closing) {
      sendJsonRpcError(res, 503, "Service Unavailable: shutting down");
      return false;
    }
    if (all.size >= maxSessions) {
      log.warn({ maxSessions }, "stdio upstream: session limit reached");
      sendJsonRpcError(res, 503, `Service Unavailable: too many sessions (limit ${maxSessions})`, { "Retry-After": "5" });
      return false;
    }
    return true;
  }

  async function spawnSession(id: string, kind: "streamable" | "sse", res: ServerResponse): Promise<Session | undefined> {
    const s = new Session(id, kind);
    all.add(s);
    try {
      await s.start();
      return s;
    } catch (err) {
      s.ended = true;
      all.delete(s);
      hooks.upstreamError("connect");
      log.error({ session: id, err: err instanceof Error ? err.message : String(err) }, "stdio child failed to start");
      sendJsonRpcError(res, 502, "Bad Gateway: MCP server process failed to start");
      return undefined;
    }
  }

  function sessionFromHeader(req: IncomingMessage, res: ServerResponse): Session | undefined {
    const sid = headerValue(req, "mcp-session-id");
    if (!sid) {
      sendJsonRpcError(res, 400, "Bad Request: Mcp-Session-Id header is required");
      return undefined;
    }
    const s = streamable.get(sid);
    if (!s || s.ended) {
      sendJsonRpcError(res, 404, "Session not found", {}, -32001);
      return undefined;
    }
    return s;
  }

  function watchStreams(s: Session, req: IncomingMessage, res: ServerResponse): void {
    const standalone = req.method === "GET";
    if (req.method === "POST") {
      s.busy++;
      res.once("close", () => {
        s.busy--;
        s.touch();
      });
    }
    watchSse(
      res,
      () => {
        hooks.streamOpened("sse");
        if (standalone) s.getStreams++;
      },
      () => {
        hooks.streamClosed("sse");
        if (standalone) s.getStreams--;
      },
    );
  }

  function newStreamableTransport(s: Session): StreamableHTTPServerTransport {
    const t = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => s.id,
      onsessioninitialized: (id) => {
        if (!s.ended) streamable.set(id, s);
      },
      maxRequestBodySize: bodyLimit,
    });
    t.onmessage = (m) => s.fromClient(m);
    t.onerror = (err) => log.debug({ session: s.id, err: err.message }, "streamable HTTP transport error");
    t.onclose = () => void s.end("delete");
    s.down = {
      send: (m, related) => (related === undefined ? t.send(m) : t.send(m, { relatedRequestId: related })),
      close: () => t.close(),
    };
    return t;
  }

  const transports = new WeakMap<Session, StreamableHTTPServerTransport>();

  async function handleMcp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "";
    if (method !== "POST" && method !== "GET" && method !== "DELETE") {
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "GET, POST, DELETE" });
      return;
    }
    if (method !== "POST" || headerValue(req, "mcp-session-id")) {
      const s = sessionFromHeader(req, res);
      if (!s) return;
      const t = transports.get(s);
      if (!t) {
        sendJsonRpcError(res, 404, "Session not found", {}, -32001);
        return;
      }
      s.touch();
      let body: unknown;
      if (method === "POST") {
        const r = await readJsonBody(req, res, bodyLimit);
        if (!r.ok) return;
        body = r.value;
        if (s.ended) {
          sendJsonRpcError(res, 404, "Session not found", {}, -32001);
          return;
        }
      }
      watchStreams(s, req, res);
      await t.handleRequest(req, res, body);
      return;
    }
    // POST without a session: only an initialize request starts one.
    const r = await readJsonBody(req, res, bodyLimit);
    if (!r.ok) return;
    const msgs = Array.isArray(r.value) ? r.value : [r.value];
    if (!msgs.some((m) => isInitializeRequest(m))) {
      sendJsonRpcError(res, 400, "Bad Request: No valid session ID provided");
      return;
    }
    if (!admit(res)) return;
    const s = await spawnSession(randomUUID(), "streamable", res);
    if (!s) return;
    if (s.ended) {
      sendJsonRpcError(res, 503, "Service Unavailable: shutting down");
      return;
    }
    const t = newStreamableTransport(s);
    transports.set(s, t);
    await t.start();
    // Refused by the SDK (headers, protocol) → never initialized → nothing keeps the child.
    res.once("close", () => {
      if (t.sessionId === undefined && !s.ended) void s.end("not-initialized");
    });
    watchStreams(s, req, res);
    await t.handleRequest(req, res, r.value);
  }

  async function handleSse(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET") {
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "GET" });
      return;
    }
    if (!admit(res)) return;
    // The transport mints the session id; spawn first, name the child's log lines after it.
    const t = new SSEServerTransport("/message", res);
    const s = await spawnSession(t.sessionId, "sse", res);
    if (!s) return;
    t.onmessage = (m) => s.fromClient(m);
    t.onerror = (err) => log.debug({ session: s.id, err: err.message }, "SSE transport error");
    t.onclose = () => void s.end("stream-closed");
    s.down = {
      send: (m) => t.send(m),
      close: () => t.close(),
    };
    legacy.set(s.id, s);
    legacyTransports.set(s, t);
    if (s.ended || res.destroyed) {
      await s.end("stream-closed");
      return;
    }
    await t.start(); // writes the head and the endpoint event at once
    hooks.streamOpened("sse");
    const keepAlive = setInterval(() => {
      if (!res.writableEnded) res.write(": keepalive\n\n");
    }, LEGACY_SSE_KEEPALIVE_MS);
    keepAlive.unref();
    res.once("close", () => {
      clearInterval(keepAlive);
      hooks.streamClosed("sse");
    });
  }

  const legacyTransports = new WeakMap<Session, SSEServerTransport>();

  async function handleMessage(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    if (req.method !== "POST") {
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "POST" });
      return;
    }
    const sid = new URLSearchParams(query).get("sessionId");
    if (!sid) {
      sendJsonRpcError(res, 400, "Bad Request: sessionId query parameter is required");
      return;
    }
    const s = legacy.get(sid);
    const t = s ? legacyTransports.get(s) : undefined;
    if (!s || !t || s.ended) {
      sendJsonRpcError(res, 404, "Session not found", {}, -32001);
      return;
    }
    s.touch();
    const r = await readJsonBody(req, res, bodyLimit);
    if (!r.ok) return;
    if (s.ended) {
      sendJsonRpcError(res, 404, "Session not found", {}, -32001);
      return;
    }
    await t.handlePostMessage(req, res, r.value);
  }

  function fail(res: ServerResponse, err: unknown): void {
    log.error({ err: err instanceof Error ? err.message : String(err) }, "stdio upstream: request failed");
    if (!res.headersSent) sendJsonRpcError(res, 500, "Internal error", {}, -32603);
    else if (!res.writableEnded) res.destroy();
  }

  return {
    handle(req, res) {
      const url = req.url ?? "/";
      const q = url.indexOf("?");
      const path = q < 0 ? url : url.slice(0, q);
      const query = q < 0 ? "" : url.slice(q + 1);
      let work: Promise<void>;
      if (path === "/mcp") work = handleMcp(req, res);
      else if (path === "/sse") work = handleSse(req, res);
      else if (path === "/message") work = handleMessage(req, res, query);
      else return false;
      work.catch((err: unknown) => fail(res, err));
      return true;
    },
    sessions() {
      return all.size;
    },
    async close() {
      closing = true;
      await Promise.all([...all].map((s) => s.end("shutdown")));
    },
  };
}
