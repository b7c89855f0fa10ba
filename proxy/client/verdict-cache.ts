/**
 * The connector's appraisals by certificate fingerprint (see ExpiringCache and appraisalExpiry).
 * A rotated certificate has another fingerprint and so is always appraised. Only accepted
 * appraisals are kept: a rejection may come from a passing condition (collateral service down)
 * and must not outlive it.
 */
import { appraisalExpiry, ExpiringCache } from "../evidence/appraisal-cache.js";
import type { Appraisal } from "../evidence/appraise.js";

export const DEFAULT_CACHE_ENTRIES = 64;

export class VerdictCache {
  private readonly cache: ExpiringCache<Appraisal>;

  constructor(
    private readonly maxCollateralAgeMs: number,
    maxEntries = DEFAULT_CACHE_ENTRIES,
    now: () => number = Date.now,
  ) {
    this.cache = new ExpiringCache(maxEntries, now);
  }

  /** The appraisal of `fingerprint`, made by `appraise` unless a valid one is held; `cached` says which. */
  async get(fingerprint: string, appraise: () => Promise<Appraisal>): Promise<{ appraisal: Appraisal; cached: boolean }> {
    const { value, cached } = await this.cache.get(fingerprint, appraise, (a) => (a.ok ? appraisalExpiry(a, this.maxCollateralAgeMs) : 0));
    return { appraisal: value, cached };
  }

  get size(): number {
    return this.cache.size;
  }
}
