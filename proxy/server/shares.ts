/**
 * Per-client shares before global caps (DESIGN.md §9). A client is the address its connection
 * comes from (an IPv6 address counted by its /64, which one host is usually handed whole), or
 * the identity it proved under mutual attestation. Each shared resource gives every client a
 * share and the process a cap: past its share a client is told 429, past the cap everyone is
 * told 503, both with the seconds after which a retry can succeed.
 *
 * The per-client tables are bounded: past MAX_TRACKED_CLIENTS the least recently seen client is
 * forgotten (it starts again with a whole share, as a new one would), so many addresses cost a
 * bounded table and constant work per request, never unbounded memory.
 */
import { isIP } from "node:net";

/** The client an address stands for: IPv4 (mapped or not) as is, IPv6 by its /64 prefix. */
export function clientOfAddress(address: string | undefined): string {
  if (!address) return "unknown";
  if (address.startsWith("::ffff:") && isIP(address.slice(7)) === 4) return address.slice(7);
  if (isIP(address) !== 6) return address;
  const [head = "", tail = ""] = address.split("::", 2) as [string, string?];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  // An embedded IPv4 tail counts as two groups; only the first four groups matter here.
  const width = right.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
  const groups = address.includes("::") ? [...left, ...Array<string>(Math.max(0, 8 - left.length - width)).fill("0"), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => (Number.parseInt(g, 16) || 0).toString(16))
    .join(":")}::/64`;
}

/** A token bucket: `perMinute` tokens refilled continuously, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perMinute: number,
    private readonly burst: number = perMinute,
    now: number = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }
  private refill(now: number): void {
    // A wall clock set back must not take tokens away.
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) / 60_000) * this.perMinute);
    this.last = Math.max(this.last, now);
  }
  /** Seconds until one token is there (0: now), rounded up: what Retry-After says. */
  wait(now: number = Date.now()): number {
    this.refill(now);
    // Refills add up in floating point: a token promised for a time must be there at that time.
    const missing = 1 - this.tokens;
    return missing <= 1e-9 ? 0 : Math.max(1, Math.ceil((missing * 60) / this.perMinute - 1e-9));
  }
  /** Milliseconds until one token is there (0: now), unrounded: when a waiting request can go. */
  waitMs(now: number = Date.now()): number {
    this.refill(now);
    const missing = 1 - this.tokens;
    return missing <= 1e-9 ? 0 : (missing * 60_000) / this.perMinute;
  }
  take(now: number = Date.now()): void {
    this.refill(now);
    this.tokens -= 1;
  }
}

/** The most clients a share table remembers (least recently seen forgotten first). */
export const MAX_TRACKED_CLIENTS = 4096;

export type ShareDecision = { ok: true } | { ok: false; status: 429 | 503; retryAfter: number; scope: "client" | "global" };

/**
 * A rate with a per-client share and a global cap: fresh evidence, counted in quotes (see
 * server/evidence-batch.ts for who is charged for a batched quote). `take` spends one token of
 * both or none; a client refused by the cap keeps its own share for later.
 */
export class RateShares {
  private readonly global: TokenBucket;
  private readonly clients = new Map<string, TokenBucket>();
  constructor(
    globalPerMinute: number,
    private readonly clientPerMinute: number,
    private readonly maxClients: number = MAX_TRACKED_CLIENTS,
    now: number = Date.now(),
  ) {
    this.global = new TokenBucket(globalPerMinute, globalPerMinute, now);
  }

  take(client: string, now: number = Date.now()): ShareDecision {
    const bucket = this.bucketOf(client, now);
    const mine = bucket.wait(now);
    const all = this.global.wait(now);
    if (mine > 0) return { ok: false, status: 429, retryAfter: Math.max(mine, all), scope: "client" };
    if (all > 0) return { ok: false, status: 503, retryAfter: all, scope: "global" };
    bucket.take(now);
    this.global.take(now);
    return { ok: true };
  }

  /**
   * For uses that wait for their tokens instead of being refused at once (batched fresh evidence,
   * server/evidence-batch.ts): how long `client`'s share and the cap each need, in ms, and, for a
   * refusal, in Retry-After seconds.
   */
  waits(client: string, now: number = Date.now()): { clientMs: number; globalMs: number; clientS: number; globalS: number } {
    const bucket = this.bucketOf(client, now);
    return { clientMs: bucket.waitMs(now), globalMs: this.global.waitMs(now), clientS: bucket.wait(now), globalS: this.global.wait(now) };
  }

  /** Spends one token of the cap (a quote made). */
  spendGlobal(now: number = Date.now()): void {
    this.global.take(now);
  }

  /** Spends one token of `client`'s share (the client took part in a quote). */
  spendClient(client: string, now: number = Date.now()): void {
    this.bucketOf(client, now).take(now);
  }

  private bucketOf(client: string, now: number): TokenBucket {
    let bucket = this.clients.get(client);
    if (bucket) this.clients.delete(client);
    else bucket = new TokenBucket(this.clientPerMinute, this.clientPerMinute, now);
    // Re-inserted: the Map's order is the order clients were last seen.
    this.clients.set(client, bucket);
    this.bound();
    return bucket;
  }

  /** Clients remembered now (for tests and the bound). */
  get size(): number {
    return this.clients.size;
  }

  /** Forgets the least recently seen clients past the bound: O(1) each, whatever the table holds. */
  private bound(): void {
    for (const k of this.clients.keys()) {
      if (this.clients.size <= this.maxClients) return;
      this.clients.delete(k);
    }
  }
}

/**
 * Open connections with a per-client share and a global cap. Only clients with an open
 * connection are in the table, so it is bounded by the cap itself.
 */
export class ConnectionShares {
  private open = 0;
  private readonly perClient = new Map<string, number>();
  constructor(
    readonly max: number,
    readonly maxPerClient: number,
  ) {}

  /** Admits one more connection of `client`, or says which bound refused it. */
  admit(client: string): "ok" | "client" | "global" {
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.maxPerClient) return "client";
    if (this.open >= this.max) return "global";
    this.open++;
    this.perClient.set(client, mine + 1);
    return "ok";
  }

  release(client: string): void {
    const mine = this.perClient.get(client) ?? 0;
    if (mine <= 0) return;
    this.open--;
    if (mine === 1) this.perClient.delete(client);
    else this.perClient.set(client, mine - 1);
  }

  get count(): number {
    return this.open;
  }
}
