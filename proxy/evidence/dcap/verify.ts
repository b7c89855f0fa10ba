/**
 * verifyQuote: the one verifier every side uses. It runs every check it can, in a fixed order,
 * and returns a Verdict; it throws only for caller errors (a bad trust root, unreadable
 * collateral files), never because the evidence is bad.
 */
import { toHex } from "../../core/bytes.js";
import type { Result } from "../../core/result.js";
import type { ValidPath } from "./chain.js";
import { checkCollateral, type Collateral, type QeTcbLevel } from "./collateral.js";
import { loadCollateral } from "./collateral-files.js";
import { checkPckRevocation, checkQeBinding, checkQeSignature, checkQuoteSignature, pckPath, type PckPath } from "./quote-checks.js";
import { CollateralError, InputError } from "../../core/errors.js";
import { parsePckExtension, type PckExtension } from "../asn1/sgx-extension.js";
import { isDebug, isTdDebug, readQuote, type Quote } from "./quote.js";
import { intelRoot, trustAnchors, type TrustAnchor, type TrustRoot } from "./roots.js";
import { checkQeEnclave, expectedQe } from "./qe-known.js";
import { convergeTcbStatus, matchPlatformLevel, matchQeIdentity, matchTdxModule, mergeAdvisories } from "./tcb.js";
import { CheckList, type PlatformFields, type QuoteFields, type TcbFields, type TcbStatus, type Verdict } from "../verdict.js";

export interface VerifyOptions {
  /** A PCS-layout directory, a dcap-qvl JSON file, a dcap-qvl object, or a prepared Collateral. */
  collateral?: string | object;
  /** Verification time; default now. */
  at?: Date;
  /** Roots trusted besides Intel's, e.g. the dev root: PEM text or DER (parsed on each call), or anchors parsed before (a policy's). */
  trustRoots?: readonly TrustRoot[];
  /**
   * Pass `collateral.fresh` when the only problem is a passed nextUpdate (a cached copy served
   * while the collateral service is down). Off unless a policy says so; the verdict still
   * reports `tcb.collateralExpired` and names the stale pieces.
   */
  acceptStaleCollateral?: boolean;
}

/** The options as the verifier works from them: a valid time and the trust roots parsed. */
export interface Judging {
  at: Date;
  /** Intel's root first (see trustAnchors). */
  anchors: readonly TrustAnchor[];
  collateral?: string | object;
  acceptStaleCollateral?: boolean;
}

/** Read the caller's options once; throws InputError for an invalid time or trust root. */
export function judging(opts: VerifyOptions): Judging {
  const at = opts.at ?? new Date();
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new InputError("VERIFY_TIME_INVALID", "`at` must be a valid Date");
  const j: Judging = { at, anchors: trustAnchors(opts.trustRoots ?? []) };
  if (opts.collateral !== undefined) j.collateral = opts.collateral;
  if (opts.acceptStaleCollateral !== undefined) j.acceptStaleCollateral = opts.acceptStaleCollateral;
  return j;
}

export function quoteFields(q: Quote): QuoteFields {
  const h = q.header;
  const common = {
    version: h.version,
    attestationKeyType: h.attestationKeyType,
    qeSvn: h.qeSvn,
    pceSvn: h.pceSvn,
    qeVendorId: toHex(h.qeVendorId),
  };
  const certDataType = q.signatureData.certification.type;
  if (q.teeType === "SGX") {
    const b = q.body;
    return {
      ...common,
      teeType: "SGX",
      mrenclave: toHex(b.mrEnclave),
      mrsigner: toHex(b.mrSigner),
      isvProdId: b.isvProdId,
      isvSvn: b.isvSvn,
      debug: isDebug(b.attributes),
      reportData: toHex(b.reportData),
      attributes: toHex(b.attributes),
      miscSelect: b.miscSelect,
      cpuSvn: toHex(b.cpuSvn),
      isvExtProdId: toHex(b.isvExtProdId),
      isvFamilyId: toHex(b.isvFamilyId),
      configId: toHex(b.configId),
      configSvn: b.configSvn,
      certDataType,
    };
  }
  const b = q.body;
  const f: QuoteFields = {
    ...common,
    teeType: "TDX",
    bodyType: q.bodyType,
    teeTcbSvn: toHex(b.teeTcbSvn),
    mrseam: toHex(b.mrSeam),
    mrsignerseam: toHex(b.mrSignerSeam),
    seamAttributes: toHex(b.seamAttributes),
    tdAttributes: toHex(b.tdAttributes),
    xfam: toHex(b.xfam),
    mrtd: toHex(b.mrTd),
    mrconfigid: toHex(b.mrConfigId),
    mrowner: toHex(b.mrOwner),
    mrownerconfig: toHex(b.mrOwnerConfig),
    rtmr: b.rtmr.map(toHex),
    reportData: toHex(b.reportData),
    debug: isTdDebug(b.tdAttributes),
    certDataType,
  };
  if (b.teeTcbSvn2) f.teeTcbSvn2 = toHex(b.teeTcbSvn2);
  if (b.mrServiceTd) f.mrservicetd = toHex(b.mrServiceTd);
  return f;
}

function platformFields(p: PckExtension): PlatformFields {
  return {
    fmspc: toHex(p.fmspc),
    pceId: toHex(p.pceId),
    pceSvn: p.pceSvn,
    cpuSvn: toHex(p.cpuSvn),
    tcbComponents: p.tcbComponents,
    sgxType: p.sgxType,
  };
}

function verdict(c: CheckList, at: Date, quote: QuoteFields | null, platform: PlatformFields | null, tcb: TcbFields | null, dev: boolean): Verdict {
  const { ok, failed } = c.outcome();
  return { ok, failed, checks: c.checks, quote, platform, tcb, dev, at: at.toISOString() };
}

/** Load collateral; unreadable sources are the caller's error, malformed contents a failed check. */
async function resolveCollateral(source: string | object, c: CheckList): Promise<Collateral | null> {
  try {
    const col = await loadCollateral(source);
    const t = col.tcbInfo.parsed;
    c.pass(
      "collateral.format",
      `TCB info v${t.version} (${t.id}, FMSPC ${t.fmspc}, evaluation data #${t.tcbEvaluationDataNumber}), QE identity ${col.qeIdentity.parsed.id} v${col.qeIdentity.parsed.version}`,
    );
    return col;
  } catch (e) {
    if (e instanceof CollateralError && e.code === "COLLATERAL_UNREADABLE") throw e;
    c.fail("collateral.format", `collateral does not parse: ${(e as Error).message}`);
    return null;
  }
}

type TcbEvaluation = Omit<TcbFields, "collateralExpired" | "collateralNextUpdate" | "collateralIssued">;

/** Platform level (and for TDX the module), converged with the QE's status as Intel's QVL does. */
function evaluateTcb(quote: Quote, pck: PckExtension, col: Collateral, qe: QeTcbLevel | null): Result<TcbEvaluation> {
  const info = col.tcbInfo.parsed;
  const td = quote.teeType === "TDX" ? quote.body : null;
  const match = matchPlatformLevel(info, pck, td?.teeTcbSvn);
  if (!match.ok) return match;
  const level = match.value.tdx ?? match.value.sgx;
  let status = level.status;
  let advisoryIds = level.advisoryIds;
  let tdxModuleStatus: TcbStatus | null = null;
  if (td) {
    const module = matchTdxModule(info, quote.header.version, td);
    if (!module.ok) return module;
    if (module.value) {
      tdxModuleStatus = module.value.status;
      status = convergeTcbStatus(status, module.value.status);
      advisoryIds = mergeAdvisories(advisoryIds, module.value.advisoryIds);
    }
  }
  if (qe) {
    status = convergeTcbStatus(status, qe.status);
    advisoryIds = mergeAdvisories(advisoryIds, qe.advisoryIds);
  }
  return {
    ok: true,
    value: {
      status,
      advisoryIds,
      platformStatus: level.status,
      qeStatus: qe?.status ?? null,
      tdxModuleStatus,
      tcbDate: level.tcbDate,
      tcbEvaluationDataNumber: info.tcbEvaluationDataNumber,
    },
  };
}

export async function verifyQuote(input: Uint8Array, opts: VerifyOptions = {}): Promise<Verdict> {
  const j = judging(opts);
  return judgeQuote(readQuote(input), j);
}

/**
 * verifyQuote over a quote parsed once. `pckChain`, when given, is this quote's pckPath at `j.at`
 * under `j.anchors` (an appraisal judges it once for the collateral lookup and the verdict).
 */
export async function judgeQuote(parsed: Result<Quote>, j: Judging, pckChain?: PckPath): Promise<Verdict> {
  const { at, anchors } = j;
  const c = new CheckList();
  if (!parsed.ok) {
    c.fail("quote.format", parsed.code ? `${parsed.code}: ${parsed.reason}` : parsed.reason);
    return verdict(c, at, null, null, null, false);
  }
  const quote = parsed.value;
  const fields = quoteFields(quote);
  c.pass("quote.format", `quote v${quote.header.version} ${quote.teeType}, ${quote.length} bytes, certification data type ${fields.certDataType}`);

  const sig = checkQuoteSignature(quote);
  c.record("quote.signature", sig.ok, sig.ok ? sig.value : sig.reason);
  const binding = checkQeBinding(quote);
  c.record("qe.binding", binding.ok, binding.ok ? binding.value : binding.reason);

  let path: ValidPath | null = null;
  let pck: PckExtension | null = null;
  const pcks = pckChain ?? pckPath(quote, anchors, at);
  if (pcks.chain === null) {
    const { certs } = pcks;
    c.fail("pck.chain", certs.code ? `${certs.code}: ${certs.reason}` : certs.reason);
    c.fail("qe.signature", "not checked: no PCK certificate");
    c.fail("qe.enclave", "not checked: no PCK certificate, so no root to say which QE is expected");
  } else if (pcks.chain.ok) {
    path = pcks.chain.value;
    try {
      pck = parsePckExtension(path.path[0]!);
      c.pass("pck.chain", `${path.path.map((x) => x.subjectText).join(" ← ")} ← ${path.anchor.intel ? "Intel SGX Root CA" : `trust root ${path.anchor.cert.subjectText}`} (pinned by key)`);
    } catch (e) {
      c.fail("pck.chain", `PCK certificate SGX extension: ${(e as Error).message}`);
    }
    const qs = checkQeSignature(quote, path.path[0]!);
    c.record("qe.signature", qs.ok, qs.ok ? qs.value : qs.reason);
    // With or without collateral: the QE the root vouches for, not any enclave the PCK key signed for.
    const qe = checkQeEnclave(quote.signatureData.qeReport, expectedQe(path.anchor.intel, quote.teeType));
    c.record("qe.enclave", qe.ok, qe.ok ? qe.value : qe.reason);
  } else {
    c.fail("pck.chain", pcks.chain.reason);
    c.fail("qe.signature", "not checked: PCK chain is not trusted");
    c.fail("qe.enclave", "not checked: PCK chain is not trusted");
  }
  const dev = path !== null && !path.anchor.intel;
  const platform = pck ? platformFields(pck) : null;
  if (j.collateral === undefined) return verdict(c, at, fields, platform, null, dev);

  const col = await resolveCollateral(j.collateral, c);
  if (!col) return verdict(c, at, fields, platform, null, dev);

  const cc = checkCollateral(col, path?.anchor ?? intelRoot(), at);
  c.record("collateral.signature", cc.signature.ok, cc.signature.detail);
  if (path) {
    const rev = checkPckRevocation(path, col, at);
    c.record("pck.revocation", rev.ok, rev.ok ? rev.value : rev.reason);
  } else {
    c.fail("pck.revocation", "not checked: PCK chain is not trusted");
  }
  if (!cc.fresh.ok && cc.fresh.stale && j.acceptStaleCollateral === true) c.pass("collateral.fresh", `stale, accepted by the caller's policy: ${cc.fresh.detail}`);
  else c.record("collateral.fresh", cc.fresh.ok, cc.fresh.detail);

  const qe = matchQeIdentity(col.qeIdentity.parsed, quote.signatureData.qeReport, quote.teeType === "TDX" ? "TD_QE" : "QE");
  c.record("qe.identity", qe.ok, qe.ok ? `QE ISVSVN ${quote.signatureData.qeReport.isvSvn}: ${qe.value.status}` : qe.reason);

  let tcb: TcbFields | null = null;
  const tcbResult = pck ? evaluateTcb(quote, pck, col, qe.ok ? qe.value : null) : ({ ok: false, reason: "not evaluated: no trusted PCK certificate" } as const);
  if (!tcbResult.ok) {
    c.fail("tcb.status", tcbResult.reason);
  } else {
    tcb = { ...tcbResult.value, collateralExpired: !cc.fresh.ok, collateralNextUpdate: cc.fresh.nextUpdate.toISOString(), collateralIssued: cc.fresh.issued.toISOString() };
    // Revoked is never acceptable; every other status is reported and left to policy.
    const { status, advisoryIds } = tcb;
    c.record("tcb.status", status !== "Revoked", status === "Revoked" ? "TCB is Revoked" : `${status}${advisoryIds.length ? ` (${advisoryIds.join(", ")})` : ""}`);
  }
  return verdict(c, at, fields, platform, tcb, dev);
}
