/**
 * TCB evaluation as Intel's Quote Verification Library does it. Pure functions over parsed
 * collateral, the PCK certificate's SGX extension and the QE report.
 *
 * - Platform: the first TCB level (in Intel's order, newest first) whose 16 SGX components and
 *   PCESVN are all ≤ the PCK certificate's gives the platform status and advisories.
 * - QE: the QE report must match the QE identity (MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES
 *   under their masks); the first level whose ISVSVN ≤ the QE's gives the QE status.
 * - Convergence (QVL `convergeTcbStatusWithQeTcbStatus`): a QE OutOfDate makes UpToDate /
 *   SWHardeningNeeded into OutOfDate and the Configuration* statuses into
 *   OutOfDateConfigurationNeeded; otherwise the platform status stands. Advisory IDs are the union,
 *   platform first.
 */
import { equalBytes, toHex } from "./bytes.js";
import type { QeIdentity, QeTcbLevel, TcbInfo, TcbLevel } from "./collateral.js";
import type { PckExtension } from "./pck.js";
import type { SgxReportBody } from "./quote.js";
import type { TcbStatus } from "./verdict.js";

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

/** SGX only: TDX levels also match TEE_TCB_SVN and the TDX module identity, which is not built yet. */
export function matchPlatformLevel(info: TcbInfo, pck: PckExtension): Outcome<TcbLevel> {
  if (info.id !== "SGX") return { ok: false, reason: `TCB info is for ${info.id}, the quote is SGX` };
  const fmspc = toHex(pck.fmspc);
  if (fmspc !== info.fmspc) return { ok: false, reason: `PCK certificate FMSPC ${fmspc} does not match TCB info FMSPC ${info.fmspc}` };
  const pceId = toHex(pck.pceId);
  if (pceId !== info.pceId) return { ok: false, reason: `PCK certificate PCE-ID ${pceId} does not match TCB info PCE-ID ${info.pceId}` };
  for (const level of info.levels) {
    if (pck.pceSvn < level.pceSvn) continue;
    if (!level.sgxComponents.every((svn, i) => (pck.tcbComponents[i] ?? -1) >= svn)) continue;
    return { ok: true, value: level };
  }
  return {
    ok: false,
    reason: `no TCB level matches the platform (components ${pck.tcbComponents.join(",")}, PCESVN ${pck.pceSvn}): TCB status is unknown, treat as unsupported`,
  };
}

export function matchQeIdentity(identity: QeIdentity, qe: SgxReportBody, expectId: "QE" | "TD_QE"): Outcome<QeTcbLevel> {
  if (identity.id !== expectId) return { ok: false, reason: `QE identity is for ${identity.id}, expected ${expectId}` };
  if (!equalBytes(identity.mrsigner, qe.mrSigner)) {
    return { ok: false, reason: `QE MRSIGNER ${toHex(qe.mrSigner)} does not match QE identity ${toHex(identity.mrsigner)}` };
  }
  if (identity.isvProdId !== qe.isvProdId) {
    return { ok: false, reason: `QE ISVPRODID ${qe.isvProdId} does not match QE identity ${identity.isvProdId}` };
  }
  if (((qe.miscSelect & identity.miscselectMask) >>> 0) !== ((identity.miscselect & identity.miscselectMask) >>> 0)) {
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

export function convergeTcbStatus(platform: TcbStatus, qe: TcbStatus): TcbStatus {
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
