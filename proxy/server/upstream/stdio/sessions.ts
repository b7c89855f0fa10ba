/**
 * The session table: every live session (initialized or not, each holding a child) counted
 * against the limit, the ones a client may address by id, admission (limit, shutdown) and the
 * answers for a session that cannot be opened.
 */
import type { ServerResponse } from "node:http";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";
import { Session, type SessionContext, type SessionKind } from "./session.js";

export class Sessions {
  /** Every live session, initialized or not (counts against maxSessions). */
  private readonly all = new Set<Session>();
  /** Sessions a client may address, by id (Streamable HTTP once the SDK initialized them; legacy SSE at once). */
  private readonly byId = new Map<string, Session>();
  private closing = false;

  constructor(
    private readonly maxSessions: number,
    private readonly ctx: SessionContext,
  ) {}

  get size(): number {
    return this.all.size;
  }

  /**
   * Admits and starts a session with its child; when it cannot (shutting down, limit reached,
   * child failed to start) the response has been answered and this resolves undefined.
   */
  async open(id: string, kind: SessionKind, res: ServerResponse): Promise<Session | undefined> {
    if (this.closing) {
      sendJsonRpcError(res, 503, "Service Unavailable: shutting down");
      return undefined;
    }
    if (this.all.size >= this.maxSessions) {
      this.ctx.log.warn({ maxSessions: this.maxSessions }, "stdio upstream: session limit reached");
      sendJsonRpcError(res, 503, `Service Unavailable: too many sessions (limit ${this.maxSessions})`, { "Retry-After": "5" });
      return undefined;
    }
    const s = new Session(id, kind, this.ctx, (ended) => this.remove(ended));
    this.all.add(s);
    try {
      await s.start();
      return s;
    } catch (err) {
      this.ctx.hooks.upstreamError("connect");
      this.ctx.log.error({ session: id, err: err instanceof Error ? err.message : String(err) }, "stdio child failed to start");
      sendJsonRpcError(res, 502, "Bad Gateway: MCP server process failed to start");
      return undefined;
    }
  }

  /** Makes a live session addressable by its id. */
  publish(s: Session): void {
    if (!s.ended) this.byId.set(s.id, s);
  }

  /** The live session of this kind with this id. */
  find(id: string, kind: SessionKind): Session | undefined {
    const s = this.byId.get(id);
    return s && s.kind === kind && !s.ended ? s : undefined;
  }

  /** Refuses new sessions and ends every session and child. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.all].map((s) => s.end("shutdown")));
  }

  private remove(s: Session): void {
    this.all.delete(s);
    if (this.byId.get(s.id) === s) this.byId.delete(s.id);
  }
}
