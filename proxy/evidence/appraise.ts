/**
 * appraiseCertificate: an RA-TLS certificate judged against a policy. It asks the policy's
 * collateral source for the collateral (where it comes from is collateral/source.ts), runs the
 * one verifier and appends the policy's checks. Every side that trusts a peer uses this: `verify`,
 * the client connector and bridge, and the listener's client attestation.
 *
 * The certificate and its quotes are parsed once, and the primary quote's PCK chain is judged
 * once: the collateral source and the verifier are both handed those parts.
 */
import type { Failed, Ok } from "../core/result.js";
import { judgeRaTls, primaryQuote, unreadableCertificate, type RaTlsVerdict } from "./ratls/verify.js";
import { readRaTlsCertificate, type ParsedRaTls } from "./ratls/read.js";
import { applyPolicy, type Policy } from "./policy.js";
import { CheckList } from "./verdict.js";
import { judging } from "./dcap/verify.js";
import { pckPath, type PckPath } from "./dcap/quote-checks.js";
import type { Quote } from "./dcap/quote.js";

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

/**
 * The quote a collateral source is asked about, as the appraisal holds it: its bytes, parsed
 * (or why not), and its PCK certificates with their path to the policy's roots at the appraisal
 * time (null when it does not parse).
 */
export type AppraisedQuote = { bytes: Uint8Array } & ({ parsed: Ok<Quote>; pck: PckPath } | { parsed: Failed; pck: null });

/** Where a policy's collateral comes from; one per policy, shared by every appraisal (see collateral/source.ts). */
export interface CollateralSource {
  /** null: the policy does not need collateral. Throws when it cannot be had. */
  forQuote(quote: AppraisedQuote): Promise<{ collateral: string | object; info: CollateralInfo } | null>;
}

function sourceDetail(i: CollateralInfo): string {
  if (i.source === "file") return `from ${i.location}`;
  const how = i.source === "stale-cache" ? `a stale cached copy (the service failed: ${i.error})` : i.source === "cache" ? "the disk cache" : "the network";
  return `${how}, ${i.location}, fetched ${i.fetchedAt}`;
}

export async function appraiseCertificate(der: Uint8Array, policy: Policy, source: CollateralSource, at = new Date()): Promise<Appraisal> {
  const parsed = readRaTlsCertificate(der);
  // A certificate that cannot be read has no quote to fetch collateral for.
  if (!parsed.ok) return { ...applyPolicy(unreadableCertificate(parsed, at), policy), collateral: null };
  return appraiseParsed(parsed.value, policy, source, at);
}

/** appraiseCertificate over a certificate parsed once (readRaTlsCertificate). */
export async function appraiseParsed(p: ParsedRaTls, policy: Policy, source: CollateralSource, at = new Date()): Promise<Appraisal> {
  const j = judging({ at, trustRoots: policy.anchors, acceptStaleCollateral: policy.tcb.acceptStaleCollateral });
  const { bytes, parsed } = primaryQuote(p);
  const quote: AppraisedQuote = parsed.ok ? { bytes, parsed, pck: pckPath(parsed.value, j.anchors, j.at) } : { bytes, parsed, pck: null };
  const pre = new CheckList();
  let got: Awaited<ReturnType<CollateralSource["forQuote"]>> = null;
  if (policy.tcb.require) {
    try {
      got = await source.forQuote(quote);
      if (got) pre.pass("collateral.source", sourceDetail(got.info));
    } catch (e) {
      pre.fail("collateral.source", `collateral unavailable: ${(e as Error).message}`);
    }
  }
  if (got) j.collateral = got.collateral;
  const verdict = await judgeRaTls(p, j, quote.pck ?? undefined);
  // The collateral's origin goes first: a verdict without TCB status then says why.
  const judged = applyPolicy({ ...verdict, checks: [...pre.checks, ...verdict.checks] }, policy);
  return { ...judged, collateral: got?.info ?? null };
}
