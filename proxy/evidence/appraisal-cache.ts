/**
 * Appraisals by certificate fingerprint, shared by the client connector and the listener's client
 * attestation. An entry in flight is shared by concurrent callers; a settled one is kept until
 * the time its owner says (for an accepted verdict, what `appraisalExpiry` allows); a failed
 * computation is not kept. Bounded, least recently used first out.
 */
import type { Appraisal } from "./appraise.js";

interface Entry<T> {
  value: Promise<T>;
  /** Epoch ms; Infinity while the value is in flight. */
  until: number;
}

export class ExpiringCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The value of `key`, made by `make` unless a valid one is held (`cached` says which).
   * `keepUntil(value)` is when it stops being valid; a time not after now keeps nothing.
   */
  async get(key: string, make: () => Promise<T>, keepUntil: (value: T) => number): Promise<{ value: T; cached: boolean }> {
    const hit = this.entries.get(key);
    this.entries.delete(key);
    if (hit && this.now() < hit.until) {
      this.entries.set(key, hit);
      return { value: await hit.value, cached: true };
    }
    const entry: Entry<T> = { value: make(), until: Infinity };
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    let value: T;
    try {
      value = await entry.value;
    } catch (e) {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw e;
    }
    if (this.entries.get(key) === entry) {
      const until = keepUntil(value);
      if (until > this.now()) entry.until = until;
      else this.entries.delete(key);
    }
    return { value, cached: false };
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * How long an accepted appraisal holds: the first of the certificate's notAfter, the collateral's
 * nextUpdate, and the moment the collateral grows older than the policy's maxCollateralAge.
 */
export function appraisalExpiry(a: Appraisal, maxCollateralAgeMs: number): number {
  const bounds = [a.certificate ? Date.parse(a.certificate.notAfter) : 0];
  if (a.tcb) bounds.push(Date.parse(a.tcb.collateralNextUpdate), Date.parse(a.tcb.collateralIssued) + maxCollateralAgeMs);
  return Math.min(...bounds.map((b) => (Number.isNaN(b) ? 0 : b)));
}
