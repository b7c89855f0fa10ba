/**
 * Batched fresh evidence (DESIGN.md §4): one quote at a time; requests that arrive while a quote
 * is being made wait for the next one, which covers all of them (up to BATCH_MAX leaves; the
 * rest wait for the one after). A request that finds nothing being made is quoted at once, a
 * batch of one: no added latency when idle.
 *
 * A batch belongs to one certificate, because the claims carry that certificate's pubkey-hash and
 * a connection must get its own certificate's (after a rotation, older connections keep theirs).
 *
 * Shares (DESIGN.md §9, server/shares.ts) count quotes, because a quote is what costs. When a
 * quote starts, it spends one of the process's cap and one of the share of each client whose
 * requests it covers, however many they are: no client spends another's, and none takes part in
 * more quotes than its share. A client (or the cap) whose next token is at most MAX_WAIT_MS away
 * waits for it rather than being refused, its requests staying queued for a later quote, so an
 * honest burst of many connections from one address is paced, never refused; one further away
 * is refused at once with 429 (its share) or 503 (the cap) and the honest Retry-After.
 */
import { buildClaims, spkiOfCertificate, taggedReportData } from "../attest/build/ratls.js";
import { quoteOver } from "../attest/identity.js";
import type { AttestationProvider } from "../attest/provider.js";
import { BATCH_MAX, CLAIM_BATCH_ROOT, CLAIM_BATCH_SIZE, type InclusionProof } from "../core/protocol.js";
import { MerkleTree } from "../evidence/merkle.js";
import type { RateShares, ShareDecision } from "./shares.js";

/** The longest a request waits for its client's (or the cap's) next token instead of being refused. */
export const MAX_WAIT_MS = 1000;

/** What one request gets: the batch's quote and claims, and its own leaf's proof. */
export interface BatchAnswer {
  ok: true;
  quote: Uint8Array;
  claims: Uint8Array;
  proof: InclusionProof;
}

/** Refused: by a share, or (`full`) because `maxWaiting` requests already wait. */
export type BatchRefusal = Exclude<ShareDecision, { ok: true }> & { full?: true };

interface Waiter {
  leaf: Uint8Array;
  client: string;
  resolve: (a: BatchAnswer | BatchRefusal) => void;
  reject: (e: unknown) => void;
}

interface Batch {
  certDer: Uint8Array;
  waiters: Waiter[];
  clients: Set<string>;
}

export interface BatcherOptions {
  provider: AttestationProvider;
  shares: RateShares;
  /** Leaves per quote (default and most: BATCH_MAX). */
  maxBatch?: number;
  /** Requests waiting for a quote, all batches together, past which new ones get 503 (default 8 × maxBatch). */
  maxWaiting?: number;
  /** Called after each quote made: its duration and how many requests it covered. */
  onQuote?: (seconds: number, leaves: number) => void;
  /** Clock (ms), for tests. */
  now?: () => number;
}

export class EvidenceBatcher {
  private busy = false;
  /** Set while the next batch waits for a token. */
  private timer: NodeJS.Timeout | null = null;
  /** Batches waiting for their quote, oldest first. */
  private readonly queue: Batch[] = [];
  private waiting = 0;
  private made = 0;
  private readonly maxBatch: number;
  private readonly maxWaiting: number;
  private readonly now: () => number;
  /** The last certificate's key, read once per certificate rather than once per quote. */
  private spkiOf: { der: Buffer; spki: Uint8Array } | null = null;

  constructor(private readonly opts: BatcherOptions) {
    this.maxBatch = Math.min(BATCH_MAX, Math.max(1, opts.maxBatch ?? BATCH_MAX));
    this.maxWaiting = Math.max(this.maxBatch, opts.maxWaiting ?? 8 * this.maxBatch);
    this.now = opts.now ?? Date.now;
  }

  /** Quotes made so far (for tests and metrics). */
  get quotes(): number {
    return this.made;
  }

  /** Put `leaf` into the next quote for the certificate `certDer`, for `client`: the answer, or why not. */
  join(certDer: Uint8Array, leaf: Uint8Array, client: string): Promise<BatchAnswer | BatchRefusal> {
    // Compared as bytes (a memcmp), not through a per-request encoding of ~10 KB.
    const der = Buffer.from(certDer.buffer, certDer.byteOffset, certDer.byteLength);
    let batch = this.queue.find((b) => b.waiters.length < this.maxBatch && der.equals(b.certDer));
    if (!batch?.clients.has(client)) {
      const refused = this.refusal(client);
      if (refused) return Promise.resolve(refused);
    }
    if (!batch) {
      if (this.waiting >= this.maxWaiting) return Promise.resolve({ ok: false, status: 503, retryAfter: 1, scope: "global", full: true });
      batch = { certDer, waiters: [], clients: new Set() };
      this.queue.push(batch);
    }
    const b = batch;
    return new Promise((resolve, reject) => {
      b.waiters.push({ leaf, client, resolve, reject });
      b.clients.add(client);
      this.waiting++;
      this.pump();
    });
  }

  /** Why `client` cannot be quoted within MAX_WAIT_MS, or null. */
  private refusal(client: string): BatchRefusal | null {
    const w = this.opts.shares.waits(client, this.now());
    if (w.clientMs > MAX_WAIT_MS) return { ok: false, status: 429, retryAfter: Math.max(w.clientS, w.globalS), scope: "client" };
    if (w.globalMs > MAX_WAIT_MS) return { ok: false, status: 503, retryAfter: w.globalS, scope: "global" };
    return null;
  }

  private later(ms: number): void {
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.pump();
      },
      Math.max(1, Math.ceil(ms)),
    );
    this.timer.unref();
  }

  /** Start the oldest batch's quote if nothing is being quoted and its tokens are there. */
  private pump(): void {
    if (this.busy || this.timer) return;
    const batch = this.queue[0];
    if (!batch) return;
    const now = this.now();
    const shares = this.opts.shares;
    const payers = new Set<string>();
    let soonest = Number.POSITIVE_INFINITY;
    let globalMs = 0;
    for (const c of batch.clients) {
      const w = shares.waits(c, now);
      globalMs = w.globalMs;
      if (w.clientMs === 0) payers.add(c);
      else if (w.clientMs <= MAX_WAIT_MS) soonest = Math.min(soonest, w.clientMs);
      else {
        // Its share went to earlier quotes since it joined, and its next token is too far away.
        const refused: BatchRefusal = { ok: false, status: 429, retryAfter: w.clientS, scope: "client" };
        for (const x of batch.waiters) if (x.client === c) x.resolve(refused);
        const left = batch.waiters.filter((x) => x.client !== c);
        this.waiting -= batch.waiters.length - left.length;
        batch.waiters = left;
        batch.clients.delete(c);
      }
    }
    if (batch.waiters.length === 0) {
      this.queue.shift();
      return this.pump();
    }
    if (globalMs > 0) return this.later(globalMs);
    if (payers.size === 0) return this.later(soonest);

    this.queue.shift();
    const mine = batch.waiters.filter((w) => payers.has(w.client));
    const rest = batch.waiters.filter((w) => !payers.has(w.client));
    this.waiting -= mine.length;
    if (rest.length > 0) {
      // Clients without a token now stay queued, ahead of newer requests, for a quote they can pay.
      this.queue.unshift({ ...batch, waiters: rest, clients: new Set(rest.map((w) => w.client)) });
    }
    shares.spendGlobal(now);
    for (const c of payers) shares.spendClient(c, now);
    this.busy = true;
    void this.run(batch.certDer, mine).finally(() => {
      this.busy = false;
      this.pump();
    });
  }

  private spki(certDer: Uint8Array): Uint8Array {
    const der = Buffer.from(certDer.buffer, certDer.byteOffset, certDer.byteLength);
    if (!this.spkiOf || !der.equals(this.spkiOf.der)) this.spkiOf = { der: Buffer.from(der), spki: spkiOfCertificate(der) };
    return this.spkiOf.spki;
  }

  private async run(certDer: Uint8Array, waiters: Waiter[]): Promise<void> {
    let made: { tree: MerkleTree; claims: Uint8Array; quote: Uint8Array };
    try {
      const tree = new MerkleTree(waiters.map((w) => w.leaf));
      const claims = buildClaims(this.spki(certDer), { [CLAIM_BATCH_ROOT]: tree.root, [CLAIM_BATCH_SIZE]: tree.size });
      const t0 = performance.now();
      const quote = await quoteOver(this.opts.provider, taggedReportData(claims));
      this.made++;
      this.opts.onQuote?.((performance.now() - t0) / 1000, waiters.length);
      made = { tree, claims, quote };
    } catch (e) {
      for (const w of waiters) w.reject(e);
      return;
    }
    const { tree, claims, quote } = made;
    for (const [i, w] of waiters.entries()) w.resolve({ ok: true, quote, claims, proof: tree.proof(i) });
  }
}
