/**
 * Appraisals by certificate fingerprint. An appraisal holds until the first of: the certificate's
 * notAfter, the collateral's nextUpdate, and the moment the collateral grows older than the
 * policy's maxCollateralAge; after that the same certificate is appraised again. A rotated
 * certificate has another fingerprint and so is always appraised. Concurrent connections to one
 * certificate share one appraisal in flight. Only accepted appraisals are kept: a rejection may
 * come from a passing condition (collateral service down) and must not outlive it.
 */
import type { Appraisal } from "../evidence/appraise.js";

export const DEFAULT_CACHE_ENTRIES = 64;

interface Entry {
  appraisal: Promise<Appraisal>;
  /** Epoch ms; Infinity while the appraisal is in flight. */
  until: number;
}

export class VerdictCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxCollateralAgeMs: number,
    private readonly maxEntries = DEFAULT_CACHE_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  /** The appraisal of `fingerprint`, made by `appraise` unless a valid one is held; `cached` says which. */
  async get(fingerprint: string, appraise: () => Promise<Appraisal>): Promise<{ appraisal: Appraisal; cached: boolean }> {
    const hit = this.entries.get(fingerprint);
    if (hit && this.now() < hit.until) return { appraisal: await hit.appraisal, cached: true };
    if (hit) this.entries.delete(fingerprint);

    const entry: Entry = { appraisal: appraise(), until: Infinity };
    this.entries.set(fingerprint, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    let a: Appraisal;
    try {
      a = await entry.appraisal;
    } catch (e) {
      if (this.entries.get(fingerprint) === entry) this.entries.delete(fingerprint);
      throw e;
    }
    const until = this.expiry(a);
    if (!a.ok || until <= this.now()) {
      if (this.entries.get(fingerprint) === entry) this.entries.delete(fingerprint);
    } else {
      entry.until = until;
    }
    return { appraisal: a, cached: false };
  }

  get size(): number {
    return this.entries.size;
  }

  private expiry(a: Appraisal): number {
    const bounds = [a.certificate ? Date.parse(a.certificate.notAfter) : 0];
    if (a.tcb) bounds.push(Date.parse(a.tcb.collateralNextUpdate), Date.parse(a.tcb.collateralIssued) + this.maxCollateralAgeMs);
    return Math.min(...bounds.map((b) => (Number.isNaN(b) ? 0 : b)));
  }
}
