/** QE identity (v2) as Intel's PCS serves it, read strictly (collateral-fields.ts). */
import { bad, date, hexField, int, isvSvnLevels, jsonObject, str, type QeTcbLevel } from "./collateral-fields.js";

export interface QeIdentity {
  id: "QE" | "QVE" | "TD_QE";
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  tcbEvaluationDataNumber: number;
  miscselect: number;
  miscselectMask: number;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
  mrsigner: Uint8Array;
  isvProdId: number;
  levels: QeTcbLevel[];
}

export function parseQeIdentity(text: string): QeIdentity {
  const w = "enclaveIdentity";
  const o = jsonObject(text, w);
  const version = int(o, "version", w);
  if (version !== 2) bad(`${w}.version`, `QE identity version ${version} is not supported (2 is)`);
  const id = str(o, "id", w);
  if (id !== "QE" && id !== "QVE" && id !== "TD_QE") bad(`${w}.id`, `unknown enclave identity id "${id}"`);
  const levelsRaw = o.tcbLevels;
  const u32le = (b: Uint8Array) => (b[0]! | (b[1]! << 8) | (b[2]! << 16)) + b[3]! * 0x1000000;
  return {
    id,
    version,
    issueDate: date(o, "issueDate", w),
    nextUpdate: date(o, "nextUpdate", w),
    tcbEvaluationDataNumber: int(o, "tcbEvaluationDataNumber", w),
    miscselect: u32le(hexField(o, "miscselect", w, 4)),
    miscselectMask: u32le(hexField(o, "miscselectMask", w, 4)),
    attributes: hexField(o, "attributes", w, 16),
    attributesMask: hexField(o, "attributesMask", w, 16),
    mrsigner: hexField(o, "mrsigner", w, 32),
    isvProdId: int(o, "isvprodid", w, 0xffff),
    levels: isvSvnLevels(levelsRaw, w),
  };
}
