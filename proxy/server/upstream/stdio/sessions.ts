/**
 * The session table: every live session (initialized or not, each holding a child) counted
 * against the limit and its opener's share, the ones a client may address by id, admission, and
 * the answers for a session that cannot be opened.
 *
 * Admission (DESIGN.md §9): a client at its share (`upstream.maxSessionsPerClient`) gives up its
 * own least recently used idle session (session.ts says what idle is); with none idle it is told
 * 429. At the cap (`upstream.maxSessions`) the least recently used idle session of anyone ends;
 * with none idle everyone is told 503. Clients that open sessions and leave (the Inspector CLI
 * never sends DELETE) thus cost nobody else a refusal. A session whose client has not finished
 * `initialize` within `upstream.initTimeout` is reclaimed, `GET /sse` ones included.
 */
import type { ServerResponse } from "node:http";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";
import { type Opener, Session, type SessionContext, type SessionKind } from "./session.js";

export interface SessionLimits {
  maxSessions: number;
  maxPerClient: number;
  initTimeoutMs: number;
}

/**
 * Retry-After when every session in the way is busy: a busy session turns evictable the moment its
 * exchange ends, which nobody can foresee; an uninitialized one ends by its deadline, if sooner.
 */
const BUSY_RETRY_S = 5;

function lruIdle(sessions: Iterable<Session>): Session | undefined {
  let best: Session | undefined;
  for (const s of sessions) if (s.idle && (!best || s.lastActivity < best.lastActivity)) best = s;
  return best;
}

export class Sessions {
  /** Every live session, initialized or not (counts against maxSessions). */
  private readonly all = new Set<Session>();
  /** Sessions a client may address, by id (Streamable HTTP once the SDK initialized them; legacy SSE at once). */
  private readonly byId = new Map<string, Session>();
  private readonly initDeadlines = new Map<Session, { at: number; timer: NodeJS.Timeout }>();
  private closing = false;

  constructor(
    private readonly limits: SessionLimits,
    private readonly ctx: SessionContext,
  ) {}

  get size(): number {
    return this.all.size;
  }

  /** Why no session can be opened now (the cap reached, none idle), or null. */
  saturated(): string | null {
    if (this.all.size < this.limits.maxSessions || lruIdle(this.all)) return null;
    return `stdio session pool full (upstream.maxSessions ${this.limits.maxSessions}) with no idle session`;
  }

  /**
   * Admits and starts a session with its child; when it cannot (shutting down, share or cap
   * reached with nothing idle, child failed to start) the response has been answered and this
   * resolves undefined.
   */
  async open(id: string, kind: SessionKind, opener: Opener, res: ServerResponse): Promise<Session | undefined> {
    if (this.closing) {
      sendJsonRpcError(res, 503, "Service Unavailable: shutting down");
      return undefined;
    }
    if (!this.admit(opener, res)) return undefined;
    const s = new Session(id, kind, opener, this.ctx, (ended) => this.remove(ended));
    this.all.add(s);
    const timer = setTimeout(() => {
      if (!s.initialized && !s.ended) {
        this.ctx.log.info({ session: s.tag, initTimeoutMs: this.limits.initTimeoutMs }, "stdio session not initialized in time; reclaiming it");
        void s.end("not-initialized");
      }
    }, this.limits.initTimeoutMs);
    timer.unref();
    this.initDeadlines.set(s, { at: Date.now() + this.limits.initTimeoutMs, timer });
    try {
      await s.start();
      return s;
    } catch (err) {
      this.ctx.hooks.upstreamError("connect");
      this.ctx.log.error({ session: s.tag, err: err instanceof Error ? err.message : String(err) }, "stdio child failed to start");
      sendJsonRpcError(res, 502, "Bad Gateway: MCP server process failed to start");
      return undefined;
    }
  }

  /** Makes room for one more session of `opener` (ending an idle one if need be), or answers why not. */
  private admit(opener: Opener, res: ServerResponse): boolean {
    const mine = [...this.all].filter((s) => s.opener.client === opener.client);
    let scope: "client" | "global" | null = null;
    let inTheWay: Session[] = [];
    if (mine.length >= this.limits.maxPerClient) {
      const victim = lruIdle(mine);
      if (victim) this.evict(victim);
      // At the cap as well, nobody could open one: that is the answer, not this client's share.
      else if (this.all.size >= this.limits.maxSessions && !lruIdle(this.all)) [scope, inTheWay] = ["global", [...this.all]];
      else [scope, inTheWay] = ["client", mine];
    } else if (this.all.size >= this.limits.maxSessions) {
      const victim = lruIdle(this.all);
      if (victim) this.evict(victim);
      else [scope, inTheWay] = ["global", [...this.all]];
    }
    if (!scope) return true;
    this.ctx.hooks.sessionRefused?.(scope);
    const retryAfter = String(this.retryAfter(inTheWay));
    if (scope === "client") {
      this.ctx.log.warn({ maxSessionsPerClient: this.limits.maxPerClient }, "stdio upstream: a client's session share is in use, none idle");
      sendJsonRpcError(res, 429, `Too Many Requests: this client's sessions (upstream.maxSessionsPerClient ${this.limits.maxPerClient}) are all in use`, { "Retry-After": retryAfter });
    } else {
      this.ctx.log.warn({ maxSessions: this.limits.maxSessions }, "stdio upstream: session limit reached, none idle");
      sendJsonRpcError(res, 503, `Service Unavailable: too many sessions in use (limit ${this.limits.maxSessions})`, { "Retry-After": retryAfter });
    }
    return false;
  }

  private evict(s: Session): void {
    this.ctx.hooks.sessionEvicted?.();
    this.ctx.log.info({ session: s.tag, idleMs: Date.now() - s.lastActivity }, "stdio session evicted (least recently used idle) to make room");
    void s.end("evicted");
  }

  /** Seconds until one of `sessions` may be gone: the next init deadline, at most BUSY_RETRY_S. */
  private retryAfter(sessions: Session[]): number {
    let ms = BUSY_RETRY_S * 1000;
    for (const s of sessions) {
      const d = !s.initialized && this.initDeadlines.get(s);
      if (d) ms = Math.min(ms, d.at - Date.now());
    }
    return Math.max(1, Math.ceil(ms / 1000));
  }

  /** Makes a live session addressable by its id. */
  publish(s: Session): void {
    if (!s.ended) this.byId.set(s.id, s);
  }

  /**
   * The live session of this kind with this id, if `principal` may use it: one opened by a
   * principal is that principal's alone; another gets the same nothing as for an unknown id.
   */
  find(id: string, kind: SessionKind, principal: string | null): Session | undefined {
    const s = this.byId.get(id);
    if (!s || s.kind !== kind || s.ended) return undefined;
    return s.opener.principal === null || s.opener.principal === principal ? s : undefined;
  }

  /** Refuses new sessions and ends every session and child. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.all].map((s) => s.end("shutdown")));
  }

  private remove(s: Session): void {
    this.all.delete(s);
    if (this.byId.get(s.id) === s) this.byId.delete(s.id);
    const d = this.initDeadlines.get(s);
    if (d) clearTimeout(d.timer);
    this.initDeadlines.delete(s);
  }
}
