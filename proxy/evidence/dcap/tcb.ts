/**
 * TCB evaluation as Intel's Quote Verification Library does it. Pure functions over parsed
 * collateral, the PCK certificate's SGX extension and the QE report.
 *
 * - Platform: the first TCB level (in Intel's order, newest first) whose 16 SGX components and
 *   PCESVN are all ≤ the PCK certificate's gives the platform status and advisories.
 * - QE: the QE report must match the QE identity (MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES
 *   under their masks); the first level whose ISVSVN ≤ the QE's gives the QE status.
 * - TDX: the platform level must also match TEE_TCB_SVN, and the TDX module must match its
 *   identity in the TCB info; the module's status converges into the platform's first.
 * - Convergence (QVL `convergeTcbStatusWithQeTcbStatus`, `…WithTdxModuleStatus`): see
 *   convergeTcbStatus. Advisory IDs are the union, platform first.
 */
import { equalBytes, isAllZero, toHex } from "../../core/bytes.js";
import type { Result } from "../../core/result.js";
import type { QeIdentity, QeTcbLevel, TcbInfo, TcbLevel, TdxModuleIdentity } from "./collateral.js";
import type { PckExtension } from "../asn1/sgx-extension.js";
import type { SgxReportBody, TdReportBody } from "./quote.js";
import type { TcbStatus } from "../verdict.js";

export interface PlatformMatch {
  /** The first level the SGX components and PCESVN reach. */
  sgx: TcbLevel;
  /** TDX: the first level that the TEE_TCB_SVN reaches too; its status is the platform's. */
  tdx: TcbLevel | null;
}

/**
 * The platform's TCB level. For TDX, Intel skips TEE_TCB_SVN bytes 0–1 (the module's SVN and
 * version, judged by the module identity) when the module version is non-zero.
 */
export function matchPlatformLevel(info: TcbInfo, pck: PckExtension, teeTcbSvn?: Uint8Array): Result<PlatformMatch> {
  const expectId = teeTcbSvn ? "TDX" : "SGX";
  if (info.id !== expectId) return { ok: false, reason: `TCB info is for ${info.id}, the quote is ${expectId}` };
  const fmspc = toHex(pck.fmspc);
  if (fmspc !== info.fmspc) return { ok: false, reason: `PCK certificate FMSPC ${fmspc} does not match TCB info FMSPC ${info.fmspc}` };
  const pceId = toHex(pck.pceId);
  if (pceId !== info.pceId) return { ok: false, reason: `PCK certificate PCE-ID ${pceId} does not match TCB info PCE-ID ${info.pceId}` };
  let sgx: TcbLevel | null = null;
  for (const level of info.levels) {
    if (pck.pceSvn < level.pceSvn) continue;
    if (!level.sgxComponents.every((svn, i) => (pck.tcbComponents[i] ?? -1) >= svn)) continue;
    sgx ??= level;
    if (!teeTcbSvn) return { ok: true, value: { sgx, tdx: null } };
    const from = teeTcbSvn[1]! > 0 ? 2 : 0;
    const tdx = level.tdxComponents;
    if (tdx?.every((svn, i) => i < from || teeTcbSvn[i]! >= svn)) return { ok: true, value: { sgx, tdx: level } };
  }
  const what = sgx ? `TEE_TCB_SVN ${toHex(teeTcbSvn!)}` : `components ${pck.tcbComponents.join(",")}, PCESVN ${pck.pceSvn}`;
  return { ok: false, reason: `no TCB level matches the platform (${what}): TCB status is unknown, treat as unsupported` };
}

/**
 * The TDX module (SEAM): MRSIGNERSEAM must equal the expected signer and SEAMATTRIBUTES be zero
 * and equal the expected attributes; with a module version above 0 the identity `TDX_<version>`
 * supplies those and its level (by TEE_TCB_SVN[0]) a module status. Version 0: no module status.
 */
export function matchTdxModule(info: TcbInfo, quoteVersion: number, td: TdReportBody): Result<QeTcbLevel | null> {
  const version = td.teeTcbSvn[1]!;
  const isvSvn = td.teeTcbSvn[0]!;
  let expected: TdxModuleIdentity | undefined = info.tdxModule;
  const byIdentity = quoteVersion > 3 && version > 0;
  if (byIdentity) {
    const id = `TDX_${version.toString(16).padStart(2, "0").toUpperCase()}`;
    expected = info.tdxModuleIdentities?.find((m) => m.id?.toUpperCase() === id);
    if (!expected) return { ok: false, reason: `TCB info has no TDX module identity ${id} for module version ${version}` };
  }
  if (!expected) return { ok: false, reason: "TCB info has no tdxModule" };
  if (!equalBytes(td.mrSignerSeam, expected.mrsigner)) {
    return { ok: false, reason: `MRSIGNERSEAM ${toHex(td.mrSignerSeam)} does not match the TDX module's ${toHex(expected.mrsigner)}` };
  }
  if (!isAllZero(td.seamAttributes) || !equalBytes(td.seamAttributes, expected.attributes)) {
    return { ok: false, reason: `SEAMATTRIBUTES ${toHex(td.seamAttributes)} are not zero and equal to the TDX module's ${toHex(expected.attributes)}` };
  }
  if (!byIdentity) return { ok: true, value: null };
  const level = expected.levels.find((l) => isvSvn >= l.isvSvn);
  if (!level) return { ok: false, reason: `TDX module ISVSVN ${isvSvn} is below every level of ${expected.id}` };
  return { ok: true, value: level };
}

export function matchQeIdentity(identity: QeIdentity, qe: SgxReportBody, expectId: "QE" | "TD_QE"): Result<QeTcbLevel> {
  if (identity.id !== expectId) return { ok: false, reason: `QE identity is for ${identity.id}, expected ${expectId}` };
  if (!equalBytes(identity.mrsigner, qe.mrSigner)) {
    return { ok: false, reason: `QE MRSIGNER ${toHex(qe.mrSigner)} does not match QE identity ${toHex(identity.mrsigner)}` };
  }
  if (identity.isvProdId !== qe.isvProdId) {
    return { ok: false, reason: `QE ISVPRODID ${qe.isvProdId} does not match QE identity ${identity.isvProdId}` };
  }
  if ((qe.miscSelect & identity.miscselectMask) >>> 0 !== (identity.miscselect & identity.miscselectMask) >>> 0) {
    return { ok: false, reason: `QE MISCSELECT ${qe.miscSelect.toString(16)} does not match QE identity under its mask` };
  }
  for (let i = 0; i < 16; i++) {
    const m = identity.attributesMask[i]!;
    if ((qe.attributes[i]! & m) !== (identity.attributes[i]! & m)) {
      return { ok: false, reason: `QE ATTRIBUTES ${toHex(qe.attributes)} do not match QE identity under its mask (byte ${i})` };
    }
  }
  const level = identity.levels.find((l) => qe.isvSvn >= l.isvSvn);
  if (!level) return { ok: false, reason: `QE ISVSVN ${qe.isvSvn} is below every level of the QE identity` };
  if (level.status === "Revoked") return { ok: false, reason: `QE ISVSVN ${qe.isvSvn} is revoked by the QE identity` };
  return { ok: true, value: level };
}

/**
 * An OutOfDate QE or TDX module makes UpToDate / SWHardeningNeeded into OutOfDate and the
 * Configuration* statuses into OutOfDateConfigurationNeeded; a Revoked one revokes the platform.
 */
export function convergeTcbStatus(platform: TcbStatus, qe: TcbStatus): TcbStatus {
  if (qe === "Revoked") return "Revoked";
  if (qe === "OutOfDate") {
    if (platform === "UpToDate" || platform === "SWHardeningNeeded") return "OutOfDate";
    if (platform === "ConfigurationNeeded" || platform === "ConfigurationAndSWHardeningNeeded") return "OutOfDateConfigurationNeeded";
  }
  return platform;
}

export function mergeAdvisories(platform: readonly string[], qe: readonly string[]): string[] {
  const out = [...platform];
  for (const id of qe) if (!out.includes(id)) out.push(id);
  return out;
}
