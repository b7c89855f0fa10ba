/**
 * collateralSource: where a policy's collateral comes from, as the CollateralSource an appraisal
 * asks: the file or directory the policy names, or a PCCS / Intel PCS with a disk cache. One per
 * policy, shared by every appraisal under it (the client's PCCS cache lives here).
 */
import type { AppraisedQuote, CollateralSource } from "../evidence/appraise.js";
import { policyTrustRoots, type Policy } from "../evidence/policy.js";
import { collateralKeyOf, collateralKeyOfPath, type CollateralKey } from "./key.js";
import { PccsClient } from "./pccs.js";

export type { CollateralSource };

export function collateralSource(policy: Policy, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}): CollateralSource {
  if (!policy.tcb.require) return { forQuote: async () => null };
  const path = policy.collateral.path;
  if (path !== null) return { forQuote: async () => ({ collateral: path, info: { source: "file", location: path, fetchedAt: null, error: null } }) };
  const url = policy.collateral.pccsUrl!;
  const client = new PccsClient({ url, cacheDir: policy.collateral.cacheDir, trustRoots: policyTrustRoots(policy), ...opts });
  return {
    forQuote: async (quote) => {
      const got = await client.get(keyOf(quote));
      return { collateral: got.collateral, info: { source: got.source, location: url, fetchedAt: got.fetchedAt, error: got.error } };
    },
  };
}

/** The appraisal has parsed the quote and judged its PCK chain: the key comes from those. */
function keyOf(q: AppraisedQuote): CollateralKey {
  // A quote that does not parse has no key; its parser says why, in its own words.
  return q.pck === null ? collateralKeyOf(q.bytes) : collateralKeyOfPath(q.parsed.value.teeType, q.pck);
}
