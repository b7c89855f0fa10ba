/**
 * One long-lived child of the modern pool and the requests it holds. Every client's request is
 * written with a pool-unique JSON-RPC id (and progress token), so that clients' own ids, which
 * collide, never meet in the child; each message the child sends is routed back by what ties it
 * to one request, with the client's id restored:
 * - an answer by its id;
 * - `notifications/progress` by its progress token;
 * - a `subscriptions/listen` acknowledgement or change notification by
 *   `_meta["io.modelcontextprotocol/subscriptionId"]`, which is the listen request's id;
 * - `notifications/message` has no such tie: it goes to the one request of this child that asked
 *   for log messages, and is dropped when there is not exactly one (never to the wrong client).
 */
import type { Logger } from "pino";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { ProxyHooks } from "../../../hooks.js";
import { META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROTOCOL_VERSION, META_SUBSCRIPTION_ID } from "../../../../core/protocol.js";
import { Child, type ChildCommand, type ChildEvents, type ExitInfo, oversizeError } from "../child.js";
import { type Id, metaOf, type ModernMessage } from "./era.js";

/** Answers for requests whose child went away (as the legacy sessions use: the SDK's ConnectionClosed). */
export const CHILD_GONE_CODE = -32000;

type Json = Record<string, unknown>;

/** Where a request's messages go: its own HTTP response. */
export interface Sink {
  readonly open: boolean;
  send(m: Json, last: boolean): void;
  end(): void;
}

/** What the members of one pool share. */
export interface MemberOwner {
  readonly log: Logger;
  readonly hooks: ProxyHooks;
  nextId(): number;
  /** The request is over (answered, cancelled, or its child gone): forget it everywhere. */
  finished(r: Inflight): void;
  /** A `tools/list` result passed by. */
  listed(result: unknown): void;
  /** A `notifications/message` that could not be tied to one request. */
  droppedLog(): void;
  exited(m: Member, info: ExitInfo): void;
}

const isId = (v: unknown): v is Id => typeof v === "string" || (typeof v === "number" && Number.isFinite(v));

/** One client request in flight in a child. */
export class Inflight {
  /** The id the child knows it by (the listen's subscription id too). */
  rid = 0;
  /** The progress token the child knows, when the client asked for progress. */
  token: number | undefined;
  member: Member | undefined;
  readonly clientToken: Id | undefined;
  readonly wantsLogs: boolean;
  /** The client's protocol envelope, for notifications the proxy sends the child in its name. */
  readonly envelope: Json;

  constructor(
    /** Who may cancel it by notification (see endpoint.ts). */
    readonly key: string,
    readonly message: ModernMessage & { id: Id },
    readonly sink: Sink,
  ) {
    const meta = metaOf(message.params) ?? {};
    this.clientToken = isId(meta.progressToken) ? meta.progressToken : undefined;
    this.wantsLogs = meta[META_LOG_LEVEL] !== undefined;
    this.envelope = {};
    for (const k of [META_PROTOCOL_VERSION, META_CLIENT_INFO, META_CLIENT_CAPABILITIES]) if (k in meta) this.envelope[k] = meta[k];
  }

  get clientId(): Id {
    return this.message.id;
  }

  get listen(): boolean {
    return this.message.method === "subscriptions/listen";
  }
}

export class Member {
  readonly child: Child;
  readonly startedAt = Date.now();
  live = false;
  /** Requests written to the child: a dual-era child has pinned itself to the modern era once one went in. */
  written = 0;
  private readonly inflight = new Map<Id, Inflight>();
  private readonly tokens = new Map<Id, Inflight>();
  private readonly log: Logger;
  private lastFromChild = Date.now();
  /** Requests owed an answer, subscriptions aside (a quiet subscription is no hang). */
  private waiting = 0;
  /** Since when the child has owed one: its silence counts from there, not from an earlier answer. */
  private busySince = 0;
  private hangTimer: NodeJS.Timeout | undefined;

  constructor(
    command: ChildCommand,
    readonly slot: number,
    private readonly owner: MemberOwner,
    private readonly requestIdleMs: number,
  ) {
    this.log = owner.log.child({ pool: slot });
    const events: ChildEvents = {
      message: (m) => this.fromChild(m as unknown as Json),
      exit: (info) => this.exited(info),
      onOversize: (id, _bytes, method) => this.oversize(id, method),
    };
    this.child = new Child(command, this.log, events);
  }

  async start(): Promise<void> {
    await this.child.start();
    this.live = true;
    this.log.info({ pid: this.child.pid }, "stdio child started (modern pool)");
  }

  /** Requests held: what the pool balances on. */
  get load(): number {
    return this.inflight.size;
  }

  /** Writes the request under pool-unique ids; false when the child can no longer take it. */
  submit(r: Inflight): boolean {
    const params: Json = { ...(r.message.params ?? {}) };
    const meta = metaOf(params);
    r.rid = this.owner.nextId();
    if (meta && r.clientToken !== undefined) {
      r.token = this.owner.nextId();
      params._meta = { ...meta, progressToken: r.token };
      this.tokens.set(r.token, r);
    }
    r.member = this;
    this.inflight.set(r.rid, r);
    if (!r.listen && ++this.waiting === 1) this.busySince = Date.now();
    const out = { ...r.message, id: r.rid, ...(r.message.params !== undefined && { params }) };
    if (!this.child.send(out as unknown as JSONRPCMessage)) {
      this.forget(r);
      return false;
    }
    this.written++;
    if (!r.listen) this.armHang();
    return true;
  }

  /** Tells the child to stop work on `r` and forgets it: nothing more is delivered for it. */
  cancel(r: Inflight, reason: string, meta: Json = r.envelope): void {
    if (this.inflight.get(r.rid) !== r) return;
    this.forget(r);
    this.send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: r.rid, reason, _meta: meta } });
  }

  /** A client notification, as it came. */
  send(m: Json): boolean {
    return this.child.send(m as unknown as JSONRPCMessage);
  }

  /** Answers every request held with `message` (the child is going away). */
  failAll(message: string): void {
    for (const r of [...this.inflight.values()]) {
      this.forget(r);
      r.sink.send({ jsonrpc: "2.0", id: r.clientId, error: { code: CHILD_GONE_CODE, message } }, true);
    }
  }

  private forget(r: Inflight): void {
    if (this.inflight.get(r.rid) === r) {
      this.inflight.delete(r.rid);
      if (!r.listen) this.waiting--;
    }
    if (r.token !== undefined && this.tokens.get(r.token) === r) this.tokens.delete(r.token);
    this.owner.finished(r);
  }

  private fromChild(m: Json): void {
    this.lastFromChild = Date.now();
    const method = m.method;
    if (typeof method !== "string") return this.answer(m);
    if ("id" in m && isId(m.id)) {
      // A request of the child's own. The modern era asks the client through InputRequiredResult
      // results instead, and a shared child has no one client to ask.
      const reply = method === "ping" ? { result: {} } : { error: { code: -32601, message: `Method not found: ${method} (no client to ask through the proxy's MCP 2026-07-28 pool)` } };
      this.send({ jsonrpc: "2.0", id: m.id, ...reply });
      return;
    }
    const params = (m.params ?? {}) as Json;
    if (method === "notifications/progress") {
      const r = isId(params.progressToken) ? this.tokens.get(params.progressToken) : undefined;
      if (r) return r.sink.send({ ...m, params: { ...params, progressToken: r.clientToken } }, false);
    } else if (method === "notifications/message") {
      const askers = [...this.inflight.values()].filter((r) => r.wantsLogs && r.sink.open);
      if (askers.length === 1) return askers[0]!.sink.send(m, false);
      this.owner.droppedLog();
      this.log.debug({ askers: askers.length }, "log message from the child not tied to exactly one request; dropped");
      return;
    } else {
      const meta = metaOf(params);
      const sid = meta?.[META_SUBSCRIPTION_ID];
      const r = isId(sid) ? this.inflight.get(sid) : undefined;
      if (r?.listen) return r.sink.send({ ...m, params: { ...params, _meta: { ...meta, [META_SUBSCRIPTION_ID]: r.clientId } } }, false);
    }
    this.log.debug({ method }, "notification from the child for no request in flight; dropped");
  }

  private answer(m: Json): void {
    const r = isId(m.id) ? this.inflight.get(m.id) : undefined;
    if (!r) {
      // Late answers to cancelled requests end here, as they should.
      this.log.debug({ id: m.id }, "answer from the child for no request in flight; dropped");
      return;
    }
    this.forget(r);
    if (r.message.method === "tools/list" && m.result !== undefined) this.owner.listed(m.result);
    r.sink.send({ ...m, id: r.clientId }, true);
  }

  /** A message over upstream.maxMessageSize was skipped; the request it answered gets an error in its place. */
  private oversize(id: Id | null, method: boolean): void {
    if (id === null) return;
    if (method) {
      this.send(oversizeError(id, this.child.maxMessageSize) as unknown as Json);
      return;
    }
    const r = this.inflight.get(id);
    if (!r) return;
    this.forget(r);
    r.sink.send({ ...(oversizeError(r.clientId, this.child.maxMessageSize) as unknown as Json) }, true);
  }

  private exited(info: ExitInfo): void {
    this.live = false;
    if (this.hangTimer) clearTimeout(this.hangTimer);
    const how = info.signal ? `signal ${info.signal}` : `code ${info.code}`;
    this.failAll(`MCP server process exited (${how})`);
    this.owner.exited(this, info);
  }

  /** A child that sends nothing at all while requests wait on it is taken as hung and replaced. */
  private armHang(): void {
    if (this.hangTimer) return;
    const check = (): void => {
      this.hangTimer = undefined;
      if (!this.live || this.waiting === 0) return;
      const quietFor = Date.now() - Math.max(this.lastFromChild, this.busySince);
      if (quietFor < this.requestIdleMs) {
        this.hangTimer = setTimeout(check, this.requestIdleMs - quietFor);
        this.hangTimer.unref();
        return;
      }
      this.log.warn({ pid: this.child.pid, waiting: this.waiting, quietMs: quietFor }, "stdio child (modern pool) sent nothing while requests waited; replacing it");
      this.owner.hooks.upstreamError("timeout");
      this.live = false;
      this.failAll(`MCP server sent nothing for ${this.requestIdleMs} ms while requests waited; its process is being replaced`);
      void this.child.stop();
    };
    this.hangTimer = setTimeout(check, this.requestIdleMs);
    this.hangTimer.unref();
  }
}
