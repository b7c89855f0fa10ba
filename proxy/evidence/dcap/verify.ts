/**
 * verifyQuote: the one verifier every side uses. It runs every check it can, in a fixed order,
 * and returns a Verdict; it throws only for caller errors (a bad trust root, unreadable
 * collateral files), never because the evidence is bad.
 */
import { toHex } from "../../core/bytes.js";
import type { ValidPath } from "./chain.js";
import { checkCollateral, type Collateral, type QeTcbLevel } from "./collateral.js";
import { loadCollateral } from "./collateral-files.js";
import { checkPckChain, checkPckRevocation, checkQeBinding, checkQeSignature, checkQuoteSignature, pckCertificates } from "./quote-checks.js";
import { CollateralError, EvidenceError, InputError } from "../../core/errors.js";
import { parsePckExtension, type PckExtension } from "../asn1/sgx-extension.js";
import { isDebug, isTdDebug, parseQuote, type Quote } from "./quote.js";
import { intelRoot, trustAnchors } from "./roots.js";
import { convergeTcbStatus, matchPlatformLevel, matchQeIdentity, matchTdxModule, mergeAdvisories, type Outcome } from "./tcb.js";
import { CheckList, type PlatformFields, type QuoteFields, type TcbFields, type TcbStatus, type Verdict } from "../verdict.js";

export interface VerifyOptions {
  /** A PCS-layout directory, a dcap-qvl JSON file, a dcap-qvl object, or a prepared Collateral. */
  collateral?: string | object;
  /** Verification time; default now. */
  at?: Date;
  /** Roots trusted besides Intel's (PEM text or DER), e.g. the dev root. */
  trustRoots?: (string | Uint8Array)[];
  /**
   * Pass `collateral.fresh` when the only problem is a passed nextUpdate (a cached copy served
   * while the collateral service is down). Off unless a policy says so; the verdict still
   * reports `tcb.collateralExpired` and names the stale pieces.
   */
  acceptStaleCollateral?: boolean;
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
  return { ok: c.failed === null && c.checks.length > 0, failed: c.failed, checks: c.checks, quote, platform, tcb, dev, at: at.toISOString() };
}

/** Load collateral; unreadable sources are the caller's error, malformed contents a failed check. */
async function resolveCollateral(source: string | object, c: CheckList): Promise<Collateral | null> {
  try {
    const col = await loadCollateral(source);
    const t = col.tcbInfo.parsed;
    c.pass("collateral.format", `TCB info v${t.version} (${t.id}, FMSPC ${t.fmspc}, evaluation data #${t.tcbEvaluationDataNumber}), QE identity ${col.qeIdentity.parsed.id} v${col.qeIdentity.parsed.version}`);
    return col;
  } catch (e) {
    if (e instanceof CollateralError && e.code === "COLLATERAL_UNREADABLE") throw e;
    c.fail("collateral.format", `collateral does not parse: ${(e as Error).message}`);
    return null;
  }
}

type TcbEvaluation = Omit<TcbFields, "collateralExpired" | "collateralNextUpdate" | "collateralIssued">;

/** Platform level (and for TDX the module), converged with the QE's status as Intel's QVL does. */
function evaluateTcb(quote: Quote, pck: PckExtension, col: Collateral, qe: QeTcbLevel | null): Outcome<TcbEvaluation> {
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
  const at = opts.at ?? new Date();
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new InputError("VERIFY_TIME_INVALID", "`at` must be a valid Date");
  const anchors = trustAnchors(opts.trustRoots ?? []);
  const c = new CheckList();

  let quote: Quote;
  try {
    quote = parseQuote(input);
  } catch (e) {
    const code = e instanceof EvidenceError ? `${e.code}: ` : "";
    c.fail("quote.format", `${code}${(e as Error).message}`);
    return verdict(c, at, null, null, null, false);
  }
  const fields = quoteFields(quote);
  c.pass("quote.format", `quote v${quote.header.version} ${quote.teeType}, ${quote.length} bytes, certification data type ${fields.certDataType}`);

  const sig = checkQuoteSignature(quote);
  c.record("quote.signature", sig.ok, sig.ok ? sig.value : sig.reason);
  const binding = checkQeBinding(quote);
  c.record("qe.binding", binding.ok, binding.ok ? binding.value : binding.reason);

  let path: ValidPath | null = null;
  let pck: PckExtension | null = null;
  const certs = pckCertificates(quote);
  if (!certs.ok) {
    c.fail("pck.chain", certs.reason);
    c.fail("qe.signature", "not checked: no PCK certificate");
  } else {
    const chain = checkPckChain(certs.value, anchors, at);
    if (chain.ok) {
      path = chain.value;
      try {
        pck = parsePckExtension(path.path[0]!);
        c.pass("pck.chain", `${path.path.map((x) => x.subjectText).join(" ← ")} ← ${path.anchor.intel ? "Intel SGX Root CA" : `trust root ${path.anchor.cert.subjectText}`} (pinned by key)`);
      } catch (e) {
        c.fail("pck.chain", `PCK certificate SGX extension: ${(e as Error).message}`);
      }
      const qs = checkQeSignature(quote, path.path[0]!);
      c.record("qe.signature", qs.ok, qs.ok ? qs.value : qs.reason);
    } else {
      c.fail("pck.chain", chain.reason);
      c.fail("qe.signature", "not checked: PCK chain is not trusted");
    }
  }
  const dev = path !== null && !path.anchor.intel;
  const platform = pck ? platformFields(pck) : null;
  if (opts.collateral === undefined) return verdict(c, at, fields, platform, null, dev);

  const col = await resolveCollateral(opts.collateral, c);
  if (!col) return verdict(c, at, fields, platform, null, dev);

  const cc = checkCollateral(col, path?.anchor ?? intelRoot(), at);
  c.record("collateral.signature", cc.signature.ok, cc.signature.detail);
  if (path) {
    const rev = checkPckRevocation(path, col, at);
    c.record("pck.revocation", rev.ok, rev.ok ? rev.value : rev.reason);
  } else {
    c.fail("pck.revocation", "not checked: PCK chain is not trusted");
  }
  if (!cc.fresh.ok && cc.fresh.stale && opts.acceptStaleCollateral === true) c.pass("collateral.fresh", `stale, accepted by the caller's policy: ${cc.fresh.detail}`);
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

