/**
 * One MCP session with its own child: the child, the HTTP side the child's messages go to
 * (`Downstream`, set by the transport that opened the session), the routing between them, and the
 * two timers that end it: idle (no request, no message, nothing awaited) and unresponsive (a
 * request waits and the child sends nothing at all).
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { JSONRPCMessage, RequestId } from "@modelcontextprotocol/sdk/types.js";
import type { ProxyHooks } from "../../hooks.js";
import { Child, type ChildCommand, type ExitInfo, oversizeError } from "./child.js";
import { Routing } from "./routing.js";
import type { StartHealth } from "./starts.js";

/** Error code for requests that were pending when the child went away (SDK: ConnectionClosed). */
const CHILD_GONE_CODE = -32000;

export type SessionKind = "streamable" | "sse";
export type EndReason = "delete" | "idle" | "unresponsive" | "child-exit" | "stream-closed" | "shutdown" | "not-initialized" | "transport-error" | "evicted";

/**
 * What logs call a session: the first 8 hex digits of its id's SHA-256. The id itself grants use
 * of the session, and logs leave the enclave.
 */
export function sessionTag(id: string): string {
  return createHash("sha256").update(id).digest("hex").slice(0, 8);
}

/** Who opened a session: the client its share is counted for, and its principal (null: none, anyone holding the id may use it). */
export interface Opener {
  client: string;
  principal: string | null;
}

/** The HTTP side of a session: where messages from the child go. */
export interface Downstream {
  send(message: JSONRPCMessage, relatedRequestId?: RequestId): Promise<void>;
  close(): Promise<void>;
}

/** What every session of one upstream shares. */
export interface SessionContext {
  command: ChildCommand;
  /** A session without any request, relayed message or request awaiting its answer for this long ends. */
  idleMs: number;
  /** A child that sends nothing for this long while a request waits is taken as hung. */
  requestIdleMs: number;
  hooks: ProxyHooks;
  log: Logger;
  starts: StartHealth;
}

export class Session {
  down: Downstream | undefined;
  ended = false;
  /** Open standalone GET streams (Streamable HTTP). */
  getStreams = 0;
  /** Open POST exchanges (Streamable HTTP): a client waiting on a request is not idle. */
  busy = 0;
  /** The client sent something past its `initialize` (normally `notifications/initialized`). */
  initialized = false;
  readonly tag: string;
  private readonly routing = new Routing();
  private readonly child: Child;
  private readonly log: Logger;
  lastActivity = Date.now();
  private startedAt = 0;
  private childGone = false;
  private hangTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private endPromise: Promise<void> | undefined;

  /** `onEnd` takes the session out of every table, synchronously, as it ends. */
  constructor(
    readonly id: string,
    readonly kind: SessionKind,
    readonly opener: Opener,
    private readonly ctx: SessionContext,
    private readonly onEnd: (s: Session) => void,
  ) {
    this.tag = sessionTag(id);
    this.log = ctx.log.child({ session: this.tag });
    this.child = new Child(ctx.command, this.log, {
      message: (m) => this.fromChild(m),
      exit: (info) => this.childExited(info),
      onOversize: (id, _bytes, method) => this.oversize(id, method),
    });
  }

  /** Spawns the child; when it cannot start, the session is over (never begun) and this rejects. */
  async start(): Promise<void> {
    try {
      await this.child.start();
    } catch (err) {
      this.ctx.starts.spawnFailed(err);
      this.ended = true;
      this.onEnd(this);
      throw err;
    }
    this.startedAt = Date.now();
    this.ctx.starts.started(() => this.childGone);
    this.log.info({ pid: this.child.pid, kind: this.kind }, "stdio child started");
    this.armIdle();
  }

  /**
   * Idle: nothing waits on it. No POST exchange open, no standalone GET stream open (Streamable
   * HTTP), no request of the client unanswered by the child. A legacy SSE session's one stream is
   * the session itself and does not count: otherwise every SSE session would be busy for good.
   */
  get idle(): boolean {
    return !this.ended && this.busy === 0 && this.getStreams === 0 && this.routing.waiting === 0;
  }

  touch(): void {
    this.lastActivity = Date.now();
  }

  /** A message from the HTTP client, to the child. */
  fromClient(m: JSONRPCMessage): void {
    this.touch();
    if (!this.initialized && (m as { method?: unknown }).method !== "initialize") this.initialized = true;
    if (this.routing.toChild(m)) this.armHang();
    if (!this.child.send(m)) this.log.warn("stdio child: write failed");
  }

  /** A message from the child, to the HTTP client. */
  private fromChild(m: JSONRPCMessage): void {
    this.touch();
    // On legacy SSE the one stream carries everything.
    const related = this.routing.fromChild(m, this.kind === "sse" || this.getStreams > 0);
    const down = this.down;
    if (!down || this.ended) return;
    down.send(m, related).catch((err: unknown) => {
      this.log.debug({ err: err instanceof Error ? err.message : String(err) }, "message from child not deliverable");
    });
  }

  /**
   * A message over upstream.maxMessageSize was skipped: the request it answered gets an error in
   * its place, a request of the child's own is refused to the child, and the session goes on.
   */
  private oversize(id: string | number | null, method: boolean): void {
    if (id === null) return;
    const error = oversizeError(id, this.child.maxMessageSize);
    if (method) this.child.send(error);
    else this.fromChild(error);
  }

  private armIdle(): void {
    const { idleMs } = this.ctx;
    const wait = Math.min(2 ** 31 - 1, Math.max(1, this.lastActivity + idleMs - Date.now()));
    this.idleTimer = setTimeout(() => {
      if (this.ended) return;
      // A request still being waited for (an open POST stream; on legacy SSE, any unanswered
      // request, as the one stream is always open) keeps the session, however quiet.
      if (this.busy > 0 || (this.kind === "sse" && this.routing.waiting > 0)) this.touch();
      if (Date.now() - this.lastActivity >= idleMs) {
        this.log.info("stdio session idle; ending");
        void this.end("idle");
      } else {
        this.armIdle();
      }
    }, wait);
    this.idleTimer.unref();
  }

  /**
   * Without this a child that stops answering holds its clients' requests (and itself) until the
   * session idles out, which a waiting request postpones forever.
   */
  private armHang(): void {
    if (this.hangTimer || this.ended) return;
    const { requestIdleMs } = this.ctx;
    const rearm = (ms: number): void => {
      this.hangTimer = setTimeout(check, ms);
      this.hangTimer.unref();
    };
    const check = (): void => {
      this.hangTimer = undefined;
      if (this.ended || this.routing.waiting === 0) return;
      if (this.routing.waitsOnClient) return rearm(requestIdleMs);
      const quietFor = Date.now() - this.routing.quietSince;
      if (quietFor < requestIdleMs) return rearm(requestIdleMs - quietFor);
      this.ctx.hooks.upstreamError("timeout");
      this.log.warn({ pid: this.child.pid, waiting: this.routing.waiting, quietMs: quietFor }, "stdio child sent nothing while requests waited; ending its session");
      void this.end("unresponsive");
    };
    rearm(requestIdleMs);
  }

  private childExited(exit: ExitInfo): void {
    this.childGone = true;
    const info = { pid: this.child.pid, code: exit.code, signal: exit.signal };
    if (this.ended) {
      this.log.info(info, "stdio child exited");
    } else {
      this.ctx.hooks.upstreamError("child-exit");
      this.ctx.starts.exited(this.startedAt, exit);
      this.log.warn(info, "stdio child exited; ending its session");
      void this.end("child-exit");
    }
  }

  /** Ends the session: HTTP streams closed, pending requests answered with an error, child ended. */
  end(reason: EndReason): Promise<void> {
    if (this.endPromise) return this.endPromise;
    // Synchronously out of every table: later requests for this session are answered 404.
    this.ended = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.hangTimer) clearTimeout(this.hangTimer);
    this.onEnd(this);
    this.log.info({ reason }, "stdio session ended");
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
            ? `MCP server sent nothing for ${this.ctx.requestIdleMs} ms while a request waited; session ended`
            : `MCP session ended (${reason})`;
      for (const id of this.routing.drain()) {
        await down.send({ jsonrpc: "2.0", id, error: { code: CHILD_GONE_CODE, message } }, id).catch(() => {});
      }
      await down.close().catch(() => {});
    }
    await this.child.stop();
  }
}
