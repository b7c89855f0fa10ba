/**
 * appraiseCertificate: an RA-TLS certificate judged against a policy. It gets the collateral the
 * policy asks for (a local file, or a PCCS / Intel PCS with a disk cache), runs the one verifier
 * and appends the policy's checks. Every side that trusts a peer uses this: `verify`, the client
 * connector and bridge, and the listener's client attestation.
 */
import { readRaTls } from "./ratls/read.js";
import { verifyRaTlsCertificate, type RaTlsVerdict } from "./ratls/verify.js";
import { applyPolicy, policyTrustRoots, type Policy } from "./policy.js";
import { PccsClient, collateralKeyOf } from "../collateral/pccs.js";
import { CheckList } from "./verdict.js";
import { parseCertificate } from "./asn1/x509.js";

export interface CollateralInfo {
  /** Where the collateral came from: a file, the network, the disk cache, or a stale cached copy. */
  source: "file" | "network" | "cache" | "stale-cache";
  location: string;
  fetchedAt: string | null;
  /** Why the network was not used (stale copies only). */
  error: string | null;
}

export interface Appraisal extends RaTlsVerdict {
  /** The policy file the verdict was judged against. */
  policy: string;
  collateral: CollateralInfo | null;
}

/** Where a policy's collateral comes from; one per policy, shared by every appraisal. */
export interface CollateralSource {
  /** null: the policy does not need collateral. Throws when it cannot be had. */
  forQuote(quote: Uint8Array): Promise<{ collateral: string | object; info: CollateralInfo } | null>;
}

export function collateralSource(policy: Policy, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}): CollateralSource {
  if (!policy.tcb.require) return { forQuote: async () => null };
  const path = policy.collateral.path;
  if (path !== null) return { forQuote: async () => ({ collateral: path, info: { source: "file", location: path, fetchedAt: null, error: null } }) };
  const url = policy.collateral.pccsUrl!;
  const client = new PccsClient({ url, cacheDir: policy.collateral.cacheDir, trustRoots: policyTrustRoots(policy), ...opts });
  return {
    forQuote: async (quote) => {
      const got = await client.get(collateralKeyOf(quote, policyTrustRoots(policy)));
      return { collateral: got.collateral, info: { source: got.source, location: url, fetchedAt: got.fetchedAt, error: got.error } };
    },
  };
}

/** The certificate's primary quote, or null when it has none a reader can find. */
function primaryQuote(der: Uint8Array): Uint8Array | null {
  try {
    const ev = readRaTls(parseCertificate(der));
    return ev.tagged?.quote ?? ev.legacy?.quote ?? null;
  } catch {
    return null;
  }
}

export async function appraiseCertificate(der: Uint8Array, policy: Policy, source: CollateralSource, at = new Date()): Promise<Appraisal> {
  const quote = primaryQuote(der);
  const pre = new CheckList();
  let got: Awaited<ReturnType<CollateralSource["forQuote"]>> = null;
  if (quote !== null && policy.tcb.require) {
    try {
      got = await source.forQuote(quote);
      if (got) {
        const i = got.info;
        pre.pass("collateral.source", i.source === "file" ? `from ${i.location}` : `${i.source === "stale-cache" ? `a stale cached copy (the service failed: ${i.error})` : i.source === "cache" ? "the disk cache" : "the network"}, ${i.location}, fetched ${i.fetchedAt}`);
      }
    } catch (e) {
      pre.fail("collateral.source", `collateral unavailable: ${(e as Error).message}`);
    }
  }
  const verdict = await verifyRaTlsCertificate(der, {
    at,
    trustRoots: policyTrustRoots(policy),
    acceptStaleCollateral: policy.tcb.acceptStaleCollateral,
    ...(got ? { collateral: got.collateral } : {}),
  });
  // The collateral's origin goes first: a verdict without TCB status then says why.
  const judged = applyPolicy({ ...verdict, checks: [...pre.checks, ...verdict.checks] }, policy);
  return { ...judged, collateral: got?.info ?? null };
}
