/** TCB info (v2, v3; SGX and TDX) as Intel's PCS serves it, read strictly (collateral-fields.ts). */
import { toHex } from "../../core/bytes.js";
import { advisories, bad, date, hexField, int, isvSvnLevels, jsonObject, obj, status, str, svnArray, type QeTcbLevel } from "./collateral-fields.js";
import type { TcbStatus } from "../verdict.js";

export interface TcbLevel {
  sgxComponents: number[];
  pceSvn: number;
  /** TCB info v3 with id TDX only. */
  tdxComponents?: number[];
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

/** TDX module identity: the expected signer and attributes of the SEAM module, with its own levels (by ISVSVN). */
export interface TdxModuleIdentity {
  /** "TDX_01"…; absent for the tcbInfo-level `tdxModule` (module version 0). */
  id: string | null;
  mrsigner: Uint8Array;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
  levels: QeTcbLevel[];
}

export interface TcbInfo {
  id: "SGX" | "TDX";
  version: 2 | 3;
  issueDate: Date;
  nextUpdate: Date;
  /** Lower-case hex. */
  fmspc: string;
  pceId: string;
  tcbType: number;
  tcbEvaluationDataNumber: number;
  levels: TcbLevel[];
  /** TDX only. */
  tdxModule?: TdxModuleIdentity;
  tdxModuleIdentities?: TdxModuleIdentity[];
}

function tdxModule(v: unknown, where: string, withLevels: boolean): TdxModuleIdentity {
  const o = obj(v, where);
  return {
    id: withLevels ? str(o, "id", where) : null,
    mrsigner: hexField(o, "mrsigner", where, 48),
    attributes: hexField(o, "attributes", where, 8),
    attributesMask: hexField(o, "attributesMask", where, 8),
    levels: withLevels ? isvSvnLevels(o.tcbLevels, where) : [],
  };
}

export function parseTcbInfo(text: string): TcbInfo {
  const w = "tcbInfo";
  const o = jsonObject(text, w);
  const version = int(o, "version", w);
  if (version !== 2 && version !== 3) bad(`${w}.version`, `TCB info version ${version} is not supported (2, 3 are)`);
  const id = version === 2 ? "SGX" : str(o, "id", w);
  if (id !== "SGX" && id !== "TDX") bad(`${w}.id`, `unknown TCB info id "${id}"`);
  const levelsRaw = o.tcbLevels;
  if (!Array.isArray(levelsRaw) || levelsRaw.length === 0) bad(`${w}.tcbLevels`, "expected a non-empty array");
  const levels = levelsRaw.map((lv, i): TcbLevel => {
    const lw = `${w}.tcbLevels[${i}]`;
    const l = obj(lv, lw);
    const tcb = obj(l.tcb, `${lw}.tcb`);
    let sgxComponents: number[];
    let tdxComponents: number[] | undefined;
    if (version === 2) {
      sgxComponents = Array.from({ length: 16 }, (_, c) => int(tcb, `sgxtcbcomp${String(c + 1).padStart(2, "0")}svn`, `${lw}.tcb`, 255));
    } else {
      sgxComponents = svnArray(tcb.sgxtcbcomponents, `${lw}.tcb.sgxtcbcomponents`);
      if (id === "TDX") tdxComponents = svnArray(tcb.tdxtcbcomponents, `${lw}.tcb.tdxtcbcomponents`);
    }
    const level: TcbLevel = {
      sgxComponents,
      pceSvn: int(tcb, "pcesvn", `${lw}.tcb`, 0xffff),
      tcbDate: date(l, "tcbDate", lw).toISOString(),
      status: status(l, lw),
      advisoryIds: advisories(l, lw),
    };
    if (tdxComponents) level.tdxComponents = tdxComponents;
    return level;
  });
  const info: TcbInfo = {
    id,
    version,
    issueDate: date(o, "issueDate", w),
    nextUpdate: date(o, "nextUpdate", w),
    fmspc: toHex(hexField(o, "fmspc", w, 6)),
    pceId: toHex(hexField(o, "pceId", w, 2)),
    tcbType: version === 2 || o.tcbType !== undefined ? int(o, "tcbType", w) : 0,
    tcbEvaluationDataNumber: int(o, "tcbEvaluationDataNumber", w),
    levels,
  };
  if (id === "TDX") {
    info.tdxModule = tdxModule(o.tdxModule, `${w}.tdxModule`, false);
    if (o.tdxModuleIdentities !== undefined) {
      const ids = o.tdxModuleIdentities;
      if (!Array.isArray(ids)) bad(`${w}.tdxModuleIdentities`, "expected an array");
      info.tdxModuleIdentities = ids.map((m, i) => tdxModule(m, `${w}.tdxModuleIdentities[${i}]`, true));
    }
  }
  return info;
}
