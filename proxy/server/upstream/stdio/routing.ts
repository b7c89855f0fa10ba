/**
 * JSON-RPC routing between one client and one child, apart from any transport: what the child
 * still owes (requests forwarded and not yet answered), which request a progress token belongs
 * to, what the child asked the client, and so which HTTP stream a message from the child goes on.
 *
 * The relay is not an MCP peer: messages pass unchanged, methods it does not know included. This
 * is the only place that reads them, and it reads only ids, progress tokens and cancellations.
 */
import type { JSONRPCMessage, RequestId } from "@modelcontextprotocol/sdk/types.js";

export function isRequest(m: JSONRPCMessage): m is JSONRPCMessage & { method: string; id: RequestId } {
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
/** A response (result or error) carries the id of the request it answers. */
function answeredId(m: JSONRPCMessage): RequestId | undefined {
  if ("method" in m) return undefined;
  const id = (m as { id?: unknown }).id;
  return isId(id) ? id : undefined;
}

export class Routing {
  /** Client requests forwarded to the child and not yet answered → their progress token. */
  private readonly pending = new Map<RequestId, RequestId | undefined>();
  /** progressToken → the request that carried it. */
  private readonly progress = new Map<RequestId, RequestId>();
  /** Requests the child sent the client (sampling, elicitation): while one is open the child waits on the client, not hangs. */
  private readonly askedClient = new Set<RequestId>();
  /** Since when the child has owed its oldest unanswered request (or got the client's answer it waited on). */
  private waitingSince = 0;
  private lastFromChild = Date.now();

  /** Requests the child has not answered yet. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Whether the child is waiting on an answer from the client (its silence then says nothing). */
  get waitsOnClient(): boolean {
    return this.askedClient.size > 0;
  }

  /** Since when the child has been silent while it owes an answer. */
  get quietSince(): number {
    return Math.max(this.waitingSince, this.lastFromChild);
  }

  /** A message from the client on its way to the child; true when it is a request the child now owes. */
  toChild(m: JSONRPCMessage, now = Date.now()): boolean {
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
      if (this.pending.size === 1) this.waitingSince = now;
      return true;
    }
    if (isNotification(m) && m.method === "notifications/cancelled") {
      const rid = paramsOf(m)?.requestId;
      if (isId(rid)) this.forget(rid);
      return false;
    }
    const id = answeredId(m);
    if (id !== undefined && this.askedClient.delete(id)) this.waitingSince = now;
    return false;
  }

  /**
   * A message from the child: the request whose stream it belongs on, or undefined for the
   * standalone stream (a response is routed by the transport itself, by its own id).
   * `standaloneOpen`: the client has a stream for messages of no request of its own; without
   * one, such messages go on a stream still open for one of its requests rather than nowhere.
   */
  fromChild(m: JSONRPCMessage, standaloneOpen: boolean, now = Date.now()): RequestId | undefined {
    this.lastFromChild = now;
    if (isRequest(m)) this.askedClient.add(m.id);
    if (!("method" in m)) {
      const id = answeredId(m);
      if (id !== undefined) this.forget(id);
      return undefined;
    }
    const fallback = (): RequestId | undefined => (standaloneOpen ? undefined : this.newestPending());
    if (isNotification(m) && m.method === "notifications/progress") {
      const token = paramsOf(m)?.progressToken;
      return (isId(token) ? this.progress.get(token) : undefined) ?? fallback();
    }
    // Other notifications and server-to-client requests (logging, sampling, elicitation, roots).
    return fallback();
  }

  /** Every request still owed, forgotten: the caller answers them itself. */
  drain(): RequestId[] {
    const ids = [...this.pending.keys()];
    this.pending.clear();
    this.progress.clear();
    return ids;
  }

  private newestPending(): RequestId | undefined {
    let last: RequestId | undefined;
    for (const id of this.pending.keys()) last = id;
    return last;
  }

  private forget(id: RequestId): void {
    const token = this.pending.get(id);
    this.pending.delete(id);
    if (token !== undefined && this.progress.get(token) === id) this.progress.delete(token);
  }
}
