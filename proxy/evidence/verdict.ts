/**
 * The verdict: one object shape for the library, `inspect --json`, and later `verify`. Every
 * check that ran is listed in order with `ok` and a detail; `failed` names the first failure.
 * Hex strings are lower-case.
 */
import type { Failure } from "../core/result.js";

/** Stable, dotted check names. Callers and tests match on these; never rename one. */
export type CheckName =
  | "quote.format"
  | "quote.signature"
  | "qe.binding"
  | "pck.chain"
  | "qe.signature"
  | "qe.enclave"
  | "pck.revocation"
  | "collateral.source"
  | "collateral.format"
  | "collateral.signature"
  | "collateral.fresh"
  | "tcb.status"
  | "qe.identity"
  | "cert.format"
  | "cert.signature"
  | "cert.validity"
  | "binding.pubkey-hash"
  | "binding.report-data"
  | "binding.legacy-report-data"
  | "binding.sdk-report-data"
  | "binding.measurements"
  | "quote.legacy"
  | "quote.sdk"
  | "freshness.response"
  | "freshness.certificate"
  | "freshness.claims"
  | "freshness.proof"
  | "freshness.report-data"
  | "freshness.quote"
  | `policy.${string}`;

export interface Check {
  check: CheckName;
  ok: boolean;
  detail: string;
}

export interface SgxQuoteFields {
  version: number;
  teeType: "SGX";
  attestationKeyType: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: string;
  mrenclave: string;
  mrsigner: string;
  isvProdId: number;
  isvSvn: number;
  debug: boolean;
  reportData: string;
  attributes: string;
  miscSelect: number;
  cpuSvn: string;
  isvExtProdId: string;
  isvFamilyId: string;
  configId: string;
  configSvn: number;
  certDataType: number;
}

export interface TdxQuoteFields {
  version: number;
  teeType: "TDX";
  attestationKeyType: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: string;
  bodyType: number;
  teeTcbSvn: string;
  mrseam: string;
  mrsignerseam: string;
  seamAttributes: string;
  tdAttributes: string;
  xfam: string;
  mrtd: string;
  mrconfigid: string;
  mrowner: string;
  mrownerconfig: string;
  rtmr: string[];
  reportData: string;
  debug: boolean;
  teeTcbSvn2?: string;
  mrservicetd?: string;
  certDataType: number;
}

export type QuoteFields = SgxQuoteFields | TdxQuoteFields;

/** From the PCK leaf certificate's SGX extension. */
export interface PlatformFields {
  fmspc: string;
  pceId: string;
  pceSvn: number;
  cpuSvn: string;
  tcbComponents: number[];
  sgxType: number;
}

export type TcbStatus = "UpToDate" | "SWHardeningNeeded" | "ConfigurationNeeded" | "ConfigurationAndSWHardeningNeeded" | "OutOfDate" | "OutOfDateConfigurationNeeded" | "Revoked";

export interface TcbFields {
  /** Platform status converged with the TDX module's and the QE's, as Intel's QVL does. */
  status: TcbStatus;
  /** Union of the platform level's, the TDX module level's and the QE level's advisory IDs, platform first. */
  advisoryIds: string[];
  platformStatus: TcbStatus;
  /** null when the QE report does not match the QE identity (then qe.identity has failed). */
  qeStatus: TcbStatus | null;
  /** TDX with a module version above 0: the module identity level's status; otherwise null. */
  tdxModuleStatus: TcbStatus | null;
  tcbDate: string;
  tcbEvaluationDataNumber: number;
  /** Some piece of collateral is past its nextUpdate (or before its issue date) at the verification time. */
  collateralExpired: boolean;
  /** Earliest nextUpdate over all pieces of collateral (ISO 8601). */
  collateralNextUpdate: string;
  /** Earliest issue date (thisUpdate for CRLs) over all pieces: the collateral's age (ISO 8601). */
  collateralIssued: string;
}

export interface Verdict {
  ok: boolean;
  failed: null | Failure<CheckName>;
  checks: Check[];
  quote: QuoteFields | null;
  platform: PlatformFields | null;
  tcb: TcbFields | null;
  /** The PCK chain ends at a root other than Intel's (the dev root, passed explicitly). */
  dev: boolean;
  /** The verification time (ISO 8601). */
  at: string;
}

/**
 * The one rule for a verdict's outcome, wherever checks are added (the verifier, the policy, a
 * connection's freshness): `failed` is the first failed check, and `ok` holds only when some
 * check ran, none failed, and every condition the caller adds holds (fail closed: a condition
 * that fails without a failed check still refuses).
 */
export function outcome(checks: readonly Check[], ...conditions: boolean[]): Pick<Verdict, "ok" | "failed"> {
  const first = checks.find((k) => !k.ok);
  return {
    ok: first === undefined && checks.length > 0 && conditions.every(Boolean),
    failed: first === undefined ? null : { check: first.check, reason: first.detail },
  };
}

/** Collects checks in order; the first failure becomes `failed`. */
export class CheckList {
  readonly checks: Check[] = [];

  get failed(): Verdict["failed"] {
    return outcome(this.checks).failed;
  }

  /** This list's outcome (see `outcome`). */
  outcome(...conditions: boolean[]): Pick<Verdict, "ok" | "failed"> {
    return outcome(this.checks, ...conditions);
  }

  pass(check: CheckName, detail: string): void {
    this.checks.push({ check, ok: true, detail });
  }

  fail(check: CheckName, reason: string): void {
    this.checks.push({ check, ok: false, detail: reason });
  }

  record(check: CheckName, ok: boolean, detail: string): boolean {
    if (ok) this.pass(check, detail);
    else this.fail(check, detail);
    return ok;
  }
}
