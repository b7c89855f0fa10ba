/**
 * Strict readers for the fields of Intel's collateral JSON (TCB info, QE identity): every value
 * checked for type, range and form, every failure a COLLATERAL_INVALID naming the field.
 */
import { fromHex } from "../../core/bytes.js";
import { CollateralError } from "../../core/errors.js";
import type { TcbStatus } from "../verdict.js";

export const TCB_STATUSES: readonly TcbStatus[] = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded", "Revoked"];

export interface QeTcbLevel {
  isvSvn: number;
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export type Obj = Record<string, unknown>;

export function bad(where: string, msg: string): never {
  throw new CollateralError("COLLATERAL_INVALID", `${where}: ${msg}`);
}
export function obj(v: unknown, where: string): Obj {
  if (v === null || typeof v !== "object" || Array.isArray(v)) bad(where, "expected an object");
  return v as Obj;
}
export function jsonObject(text: string, where: string): Obj {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new CollateralError("COLLATERAL_JSON", `${where}: not valid JSON (${(e as Error).message})`);
  }
  return obj(j, where);
}
export function int(o: Obj, k: string, where: string, max = 0xffffffff): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) bad(`${where}.${k}`, `expected an integer 0..${max}, got ${JSON.stringify(v)}`);
  return v;
}
export function str(o: Obj, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== "string") bad(`${where}.${k}`, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}
export function hexField(o: Obj, k: string, where: string, bytes: number): Uint8Array {
  const s = str(o, k, where);
  if (s.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(s)) bad(`${where}.${k}`, `expected ${bytes} bytes of hex, got "${s}"`);
  return fromHex(s);
}
export function date(o: Obj, k: string, where: string): Date {
  const s = str(o, k, where);
  // ISO 8601 UTC as Intel writes it; Date.parse alone accepts too much.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(s)) bad(`${where}.${k}`, `expected an ISO 8601 UTC time, got "${s}"`);
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) bad(`${where}.${k}`, `invalid date "${s}"`);
  return d;
}
export function status(o: Obj, where: string): TcbStatus {
  const s = str(o, "tcbStatus", where);
  if (!(TCB_STATUSES as readonly string[]).includes(s)) bad(`${where}.tcbStatus`, `unknown TCB status "${s}"`);
  return s as TcbStatus;
}
export function advisories(o: Obj, where: string): string[] {
  const v = o.advisoryIDs;
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) bad(`${where}.advisoryIDs`, "expected an array of strings");
  return v as string[];
}
export function svnArray(v: unknown, where: string): number[] {
  if (!Array.isArray(v) || v.length !== 16) bad(where, "expected 16 components");
  return v.map((c, i) => int(obj(c, `${where}[${i}]`), "svn", `${where}[${i}]`, 255));
}

/** Levels keyed by one ISVSVN, as in the QE identity and the TDX module identities. */
export function isvSvnLevels(v: unknown, where: string): QeTcbLevel[] {
  if (!Array.isArray(v) || v.length === 0) bad(`${where}.tcbLevels`, "expected a non-empty array");
  return v.map((lv, i): QeTcbLevel => {
    const lw = `${where}.tcbLevels[${i}]`;
    const l = obj(lv, lw);
    return {
      isvSvn: int(obj(l.tcb, `${lw}.tcb`), "isvsvn", `${lw}.tcb`, 0xffff),
      tcbDate: date(l, "tcbDate", lw).toISOString(),
      status: status(l, lw),
      advisoryIds: advisories(l, lw),
    };
  });
}
