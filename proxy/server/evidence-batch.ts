/**
 * Batched fresh evidence (DESIGN.md §4): one quote at a time; requests that arrive while a quote
 * is being made wait for the next one, which covers all of them (up to BATCH_MAX leaves; the
 * rest wait for the one after). A request that finds nothing being made is quoted at once, a
 * batch of one: no added latency when idle.
 *
 * A batch belongs to one certificate, because the claims carry that certificate's pubkey-hash and
 * a connection must get its own certificate's (after a rotation, older connections keep theirs).
 *
 * Shares (DESIGN.md §9, server/shares.ts): a quote is the costly thing, so the process cap counts
 * quotes, and a client is charged one of its share for each quote its requests join, however many
 * leaves it puts in it. Opening a new batch spends one of the cap and one of the opener's share;
 * joining a waiting batch spends one of the joiner's share unless it is in that batch already.
 * So no client spends another's, none takes part in more quotes than its share, and an honest
 * burst of many connections from one address costs that address one per quote, not one per leaf.
 */
import { buildClaims, spkiOfCertificate, taggedReportData } from "../attest/build/ratls.js";
import { quoteOver } from "../attest/identity.js";
import type { AttestationProvider } from "../attest/provider.js";
import { BATCH_MAX, CLAIM_BATCH_ROOT, CLAIM_BATCH_SIZE, type InclusionProof } from "../core/protocol.js";
import { MerkleTree } from "../evidence/merkle.js";
import type { RateShares, ShareDecision } from "./shares.js";

/** What one request gets: the batch's quote and claims, and its own leaf's proof. */
export interface BatchAnswer {
  quote: Uint8Array;
  claims: Uint8Array;
  proof: InclusionProof;
}

interface Waiter {
  leaf: Uint8Array;
  resolve: (a: BatchAnswer) => void;
  reject: (e: unknown) => void;
}

interface Batch {
  certDer: Uint8Array;
  certKey: string;
  waiters: Waiter[];
  /** The clients charged for this batch's quote. */
  clients: Set<string>;
}

/** Refused: by a share (ShareDecision), or because `maxWaiting` requests already wait (`full`). */
export type JoinDecision = { ok: true; answer: Promise<BatchAnswer> } | (Exclude<ShareDecision, { ok: true }> & { full?: true });

export interface BatcherOptions {
  provider: AttestationProvider;
  shares: RateShares;
  /** Leaves per quote (default and most: BATCH_MAX). */
  maxBatch?: number;
  /** Requests waiting for a quote, all batches together, past which new ones get 503 (default 8 × maxBatch). */
  maxWaiting?: number;
  /** Called after each quote made: its duration and how many requests it covered. */
  onQuote?: (seconds: number, leaves: number) => void;
}

export class EvidenceBatcher {
  private busy = false;
  /** Batches waiting for their quote, oldest first. */
  private readonly queue: Batch[] = [];
  private waiting = 0;
  private readonly maxBatch: number;
  private readonly maxWaiting: number;
  private made = 0;

  constructor(private readonly opts: BatcherOptions) {
    this.maxBatch = Math.min(BATCH_MAX, Math.max(1, opts.maxBatch ?? BATCH_MAX));
    this.maxWaiting = Math.max(this.maxBatch, opts.maxWaiting ?? 8 * this.maxBatch);
  }

  /** Quotes made so far (for tests and metrics). */
  get quotes(): number {
    return this.made;
  }

  /**
   * Put `leaf` into the next quote for the certificate `certDer`, charged to `client`: the answer,
   * or the share that refused it (nothing is charged then).
   */
  join(certDer: Uint8Array, leaf: Uint8Array, client: string, now: number = Date.now()): JoinDecision {
    const certKey = Buffer.from(certDer).toString("base64");
    let batch = this.queue.find((b) => b.certKey === certKey && b.waiters.length < this.maxBatch);
    if (batch) {
      if (!batch.clients.has(client)) {
        const d = this.opts.shares.takeClient(client, now);
        if (!d.ok) return d;
        batch.clients.add(client);
      }
    } else {
      if (this.waiting >= this.maxWaiting) return { ok: false, status: 503, retryAfter: 1, scope: "global", full: true };
      const d = this.opts.shares.take(client, now);
      if (!d.ok) return d;
      batch = { certDer, certKey, waiters: [], clients: new Set([client]) };
      this.queue.push(batch);
    }
    const b = batch;
    const answer = new Promise<BatchAnswer>((resolve, reject) => b.waiters.push({ leaf, resolve, reject }));
    this.waiting++;
    this.pump();
    return { ok: true, answer };
  }

  private pump(): void {
    if (this.busy) return;
    const batch = this.queue.shift();
    if (!batch) return;
    this.busy = true;
    this.waiting -= batch.waiters.length;
    void this.run(batch).finally(() => {
      this.busy = false;
      this.pump();
    });
  }

  private async run(batch: Batch): Promise<void> {
    let made: { tree: MerkleTree; claims: Uint8Array; quote: Uint8Array };
    try {
      const tree = new MerkleTree(batch.waiters.map((w) => w.leaf));
      const claims = buildClaims(spkiOfCertificate(batch.certDer), { [CLAIM_BATCH_ROOT]: tree.root, [CLAIM_BATCH_SIZE]: tree.size });
      const t0 = performance.now();
      const quote = await quoteOver(this.opts.provider, taggedReportData(claims));
      this.made++;
      this.opts.onQuote?.((performance.now() - t0) / 1000, batch.waiters.length);
      made = { tree, claims, quote };
    } catch (e) {
      for (const w of batch.waiters) w.reject(e);
      return;
    }
    const { tree, claims, quote } = made;
    for (const [i, w] of batch.waiters.entries()) w.resolve({ quote, claims, proof: tree.proof(i) });
  }
}
