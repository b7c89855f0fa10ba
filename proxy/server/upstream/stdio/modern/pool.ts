/**
 * The modern pool: `upstream.modernChildren` long-lived children that serve every MCP
 * 2026-07-28 client together. Under Gramine each child is an enclave of its own (seconds to
 * start, gigabytes of EPC), so nothing here spawns per client: the children start with the first
 * modern request, are restarted when they die (at once, then backing off while they keep dying
 * young), and each request goes to the child holding the fewest.
 *
 * Legacy `initialize` sessions keep a child each, apart from this pool (sessions.ts).
 */
import type { Logger } from "pino";
import type { ProxyHooks } from "../../../hooks.js";
import type { ChildCommand, ExitInfo } from "../child.js";
import type { Id, ModernMessage, Rejection } from "./era.js";
import { ToolHeaders } from "./headers.js";
import type { StartHealth } from "../starts.js";
import { Inflight, Member, type MemberOwner, type Sink } from "./member.js";

export interface PoolOptions {
  size: number;
  command: ChildCommand;
  /** A child that sends nothing for this long while requests wait is replaced. */
  requestIdleMs: number;
  hooks: ProxyHooks;
  log: Logger;
  /** Told of every start, failed start and early exit (/healthz). */
  starts?: StartHealth;
}

/** A child that dies sooner than this after its start counts as dying young. */
const YOUNG_MS = 10_000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 30_000;

/** One place in the pool: its child, or the start (or restart) of the next one. */
class Slot {
  member: Member | undefined;
  private pending: Promise<Member | undefined> | undefined;
  private wake: (() => void) | undefined;
  private youngDeaths = 0;

  constructor(
    private readonly pool: ModernPool,
    readonly index: number,
  ) {}

  get live(): Member | undefined {
    return this.member?.live ? this.member : undefined;
  }

  /** The live child, or the one starting (now, or when a restart's back-off is over). */
  ensure(): Promise<Member | undefined> {
    const live = this.live;
    if (live) return Promise.resolve(live);
    return (this.pending ??= this.spawn(0));
  }

  exited(m: Member, info: ExitInfo): void {
    if (this.member !== m) return;
    this.member = undefined;
    if (this.pool.closing) return;
    this.pool.starts?.exited(m.startedAt, info);
    this.youngDeaths = Date.now() - m.startedAt < YOUNG_MS ? this.youngDeaths + 1 : 0;
    const delay = this.youngDeaths === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.youngDeaths - 1));
    this.pool.log.warn({ pool: this.index, pid: m.child.pid, code: info.code, signal: info.signal, restartInMs: delay }, "stdio child (modern pool) exited; restarting it");
    this.pending ??= this.spawn(delay);
  }

  /** Ends a back-off early (shutting down). */
  interrupt(): void {
    this.wake?.();
  }

  private async spawn(delayMs: number): Promise<Member | undefined> {
    try {
      if (delayMs > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delayMs);
          t.unref();
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
      if (this.pool.closing) return undefined;
      const m = new Member(this.pool.command, this.index, this.pool, this.pool.requestIdleMs);
      try {
        await m.start();
      } catch (err) {
        this.pool.starts?.spawnFailed(err);
        this.pool.hooks.upstreamError("connect");
        this.pool.log.error({ pool: this.index, err: err instanceof Error ? err.message : String(err) }, "stdio child (modern pool) failed to start");
        return undefined;
      }
      if (this.pool.closing) {
        await m.child.stop();
        return undefined;
      }
      this.member = m;
      this.pool.starts?.started(() => !m.live);
      return m;
    } finally {
      this.pending = undefined;
    }
  }
}

/** The first of `ps` to give a member, or undefined once every one gave none. */
function firstMember(ps: Promise<Member | undefined>[]): Promise<Member | undefined> {
  return new Promise((resolve) => {
    let left = ps.length;
    for (const p of ps) {
      void p.then((m) => {
        if (m) resolve(m);
        else if (--left === 0) resolve(undefined);
      });
    }
  });
}

export class ModernPool implements MemberOwner {
  readonly command: ChildCommand;
  readonly requestIdleMs: number;
  readonly hooks: ProxyHooks;
  readonly log: Logger;
  readonly starts: StartHealth | undefined;
  /** `x-mcp-header` annotations learned from the tools/list answers that passed by. */
  readonly toolHeaders = new ToolHeaders();
  closing = false;
  /** `notifications/message` dropped for want of exactly one request to tie them to. */
  droppedLogs = 0;
  private readonly slots: Slot[];
  private lastId = 0;
  /** (client key, client id) → its requests in flight, for cancellations by notification. */
  private readonly byClient = new Map<string, Set<Inflight>>();

  constructor(o: PoolOptions) {
    this.command = o.command;
    this.requestIdleMs = o.requestIdleMs;
    this.hooks = o.hooks;
    this.log = o.log;
    this.starts = o.starts;
    this.slots = Array.from({ length: Math.max(1, o.size) }, (_, i) => new Slot(this, i));
  }

  /** Children alive now. */
  get children(): number {
    return this.slots.filter((s) => s.live).length;
  }

  nextId(): number {
    return ++this.lastId;
  }

  /**
   * Hands a request to the least busy child. Resolves with the request in flight, with a
   * rejection when no child can take it, or undefined when the client left meanwhile.
   */
  async submit(key: string, message: ModernMessage & { id: Id }, sink: Sink): Promise<Inflight | Rejection | undefined> {
    if (this.closing) return { status: 503, code: CHILD_UNAVAILABLE, message: "Service Unavailable: shutting down", id: message.id };
    const member = await this.pick();
    if (this.closing) return { status: 503, code: CHILD_UNAVAILABLE, message: "Service Unavailable: shutting down", id: message.id };
    if (!member) return { status: 502, code: CHILD_UNAVAILABLE, message: "Bad Gateway: MCP server process failed to start", id: message.id };
    if (!sink.open) return undefined;
    const r = new Inflight(key, message, sink);
    if (!member.submit(r)) return { status: 502, code: CHILD_UNAVAILABLE, message: "Bad Gateway: MCP server process is gone", id: message.id };
    const k = clientKey(key, message.id);
    let set = this.byClient.get(k);
    if (!set) this.byClient.set(k, (set = new Set()));
    set.add(r);
    return r;
  }

  /** The client is gone before its answer: the child is told to stop. */
  cancel(r: Inflight, reason: string): void {
    r.member?.cancel(r, reason);
  }

  /**
   * A client's `notifications/cancelled` for one of its own requests. Only a request that is the
   * one of that id under that client key is cancelled: an ambiguous one is left to its stream.
   */
  cancelByClient(key: string, params: Record<string, unknown>): boolean {
    const id = params.requestId;
    if (typeof id !== "string" && typeof id !== "number") return false;
    const set = this.byClient.get(clientKey(key, id));
    if (set?.size !== 1) return false;
    const r = [...set][0]!;
    const reason = typeof params.reason === "string" ? params.reason : "cancelled by the client";
    const meta = params._meta !== null && typeof params._meta === "object" ? (params._meta as Record<string, unknown>) : r.envelope;
    r.member?.cancel(r, reason, meta);
    r.sink.end();
    return true;
  }

  /**
   * Any other client notification, to one child that already serves modern requests (a dual-era
   * child pins its era on its first message, which must not be a bare notification).
   */
  forward(m: Record<string, unknown>): boolean {
    const members = this.slots.map((s) => s.live).filter((x): x is Member => x !== undefined && x.written > 0);
    const target = leastLoaded(members);
    return target?.send(m) ?? false;
  }

  finished(r: Inflight): void {
    const k = clientKey(r.key, r.clientId);
    const set = this.byClient.get(k);
    if (set?.delete(r) && set.size === 0) this.byClient.delete(k);
  }

  listed(result: unknown): void {
    this.toolHeaders.learn(result);
  }

  droppedLog(): void {
    this.droppedLogs++;
  }

  exited(m: Member, info: ExitInfo): void {
    if (!this.closing) this.hooks.upstreamError("child-exit");
    this.slots[m.slot]?.exited(m, info);
  }

  /** Refuses new requests, answers the ones in flight, and ends every child. */
  async close(): Promise<void> {
    this.closing = true;
    const members: Member[] = [];
    for (const s of this.slots) {
      s.interrupt();
      if (s.member) members.push(s.member);
    }
    for (const m of members) m.failAll("MCP server shutting down");
    await Promise.all(members.map((m) => m.child.stop()));
  }

  private async pick(): Promise<Member | undefined> {
    const starting = this.slots.map((s) => s.ensure());
    const live = this.slots.map((s) => s.live).filter((m): m is Member => m !== undefined);
    if (live.length > 0) return leastLoaded(live);
    const first = await firstMember(starting);
    if (!first) return undefined;
    return leastLoaded(this.slots.map((s) => s.live).filter((m): m is Member => m !== undefined)) ?? first;
  }
}

/** Answers when no child can take a request. */
const CHILD_UNAVAILABLE = -32000;

function clientKey(key: string, id: Id): string {
  return `${key}\u0000${typeof id}:${id}`;
}

function leastLoaded(ms: Member[]): Member | undefined {
  let best: Member | undefined;
  for (const m of ms) if (!best || m.load < best.load) best = m;
  return best;
}
