/**
 * Which code a policy accepts: the `measurements[]` entries and the debug rule, for SGX enclaves
 * and TDX trust domains. An entry pins one kind of TEE, never both, so an SGX identity can never
 * be satisfied by a TD (or the reverse) through fields the two happen to share in name only.
 */
import { PolicyError } from "../core/errors.js";
import { valueParsers } from "../core/schema.js";
import type { QuoteFields, SgxQuoteFields, TdxQuoteFields } from "./verdict.js";

const { int } = valueParsers((key, source, reason) => {
  throw new PolicyError(key, source, reason);
});

export interface SgxMeasurementRule {
  tee: "SGX";
  mrenclave: string | null;
  mrsigner: string | null;
  isvProdId: number | null;
  minIsvSvn: number | null;
}

/** Every register is optional but MRTD: without it an entry would accept any firmware. */
export interface TdxMeasurementRule {
  tee: "TDX";
  mrtd: string;
  rtmr0: string | null;
  rtmr1: string | null;
  rtmr2: string | null;
  rtmr3: string | null;
  mrconfigid: string | null;
  mrowner: string | null;
  mrownerconfig: string | null;
}

export type MeasurementRule = SgxMeasurementRule | TdxMeasurementRule;

export const SGX_KEYS = ["mrenclave", "mrsigner", "isvProdId", "minIsvSvn"] as const;
/** The 48-byte TD registers a TDX entry may pin, in the order a miss is reported. */
export const TDX_KEYS = ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner", "mrownerconfig"] as const;
const ENTRY_KEYS: readonly string[] = [...SGX_KEYS, ...TDX_KEYS];

type TdxKey = (typeof TDX_KEYS)[number];

function hexBytes(key: string, v: unknown, source: string, bytes: number): string {
  const digits = bytes * 2;
  if (typeof v !== "string" || v.length !== digits || !/^[0-9a-fA-F]+$/.test(v)) throw new PolicyError(key, source, `expected ${bytes} bytes of hex (${digits} characters), got ${JSON.stringify(v)}`);
  return v.toLowerCase();
}

function entry(key: string, e: unknown, source: string): MeasurementRule {
  if (e === null || typeof e !== "object" || Array.isArray(e)) throw new PolicyError(key, source, "expected a mapping");
  const m = e as Record<string, unknown>;
  for (const k of Object.keys(m)) if (!ENTRY_KEYS.includes(k)) throw new PolicyError(`${key}.${k}`, source, `unknown key (known: ${ENTRY_KEYS.join(", ")})`);
  const sgx = SGX_KEYS.filter((k) => m[k] !== undefined);
  const tdx = TDX_KEYS.filter((k) => m[k] !== undefined);
  if (sgx.length > 0 && tdx.length > 0)
    throw new PolicyError(key, source, `an entry pins an SGX enclave (${SGX_KEYS.join(", ")}) or a TDX trust domain (${TDX_KEYS.join(", ")}), not both: it has ${sgx[0]} and ${tdx[0]}`);
  if (tdx.length > 0) {
    if (m.mrtd === undefined) throw new PolicyError(key, source, `a TDX entry needs mrtd (it has ${tdx.join(", ")})`);
    const reg = (k: TdxKey): string | null => (m[k] === undefined ? null : hexBytes(`${key}.${k}`, m[k], source, 48));
    return {
      tee: "TDX",
      mrtd: hexBytes(`${key}.mrtd`, m.mrtd, source, 48),
      rtmr0: reg("rtmr0"),
      rtmr1: reg("rtmr1"),
      rtmr2: reg("rtmr2"),
      rtmr3: reg("rtmr3"),
      mrconfigid: reg("mrconfigid"),
      mrowner: reg("mrowner"),
      mrownerconfig: reg("mrownerconfig"),
    };
  }
  const rule: SgxMeasurementRule = {
    tee: "SGX",
    mrenclave: m.mrenclave === undefined ? null : hexBytes(`${key}.mrenclave`, m.mrenclave, source, 32),
    mrsigner: m.mrsigner === undefined ? null : hexBytes(`${key}.mrsigner`, m.mrsigner, source, 32),
    isvProdId: m.isvProdId === undefined ? null : int(`${key}.isvProdId`, m.isvProdId, source, 0, 0xffff),
    minIsvSvn: m.minIsvSvn === undefined ? null : int(`${key}.minIsvSvn`, m.minIsvSvn, source, 0, 0xffff),
  };
  if (rule.mrenclave === null && rule.mrsigner === null) throw new PolicyError(key, source, "an SGX entry needs mrenclave or mrsigner (or both); a TDX entry needs mrtd");
  return rule;
}

/** The `measurements` key: a non-empty list of entries, or "any" written out. */
export function measurementRules(v: unknown, source: string): "any" | MeasurementRule[] {
  if (v === undefined)
    throw new PolicyError("measurements", source, 'required: a list of { mrenclave } / { mrsigner, isvProdId, minIsvSvn } (SGX) or { mrtd, rtmr0…rtmr3 } (TDX) entries, or "any" written out');
  if (v === "any") return "any";
  if (!Array.isArray(v)) throw new PolicyError("measurements", source, `expected a list, got ${JSON.stringify(v)}`);
  if (v.length === 0) throw new PolicyError("measurements", source, 'an empty list matches nothing; list measurements or write "any"');
  return v.map((e, i) => entry(`measurements[${i}]`, e, source));
}

/** A short description of an entry, for the passing detail. */
export function describeRule(r: MeasurementRule): string {
  const short = (k: string, h: string): string => `${k} ${h.slice(0, 16)}…`;
  if (r.tee === "TDX") return TDX_KEYS.flatMap((k) => (r[k] === null ? [] : [short(k, r[k])])).join(", ");
  const parts: string[] = [];
  if (r.mrenclave) parts.push(short("mrenclave", r.mrenclave));
  if (r.mrsigner) parts.push(short("mrsigner", r.mrsigner));
  if (r.isvProdId !== null) parts.push(`isvProdId ${r.isvProdId}`);
  if (r.minIsvSvn !== null) parts.push(`isvSvn ≥ ${r.minIsvSvn}`);
  return parts.join(", ");
}

/** The quote's value of a TDX entry key. */
function tdValue(q: TdxQuoteFields, k: TdxKey): string {
  const rtmr = /^rtmr([0-3])$/.exec(k);
  return rtmr ? (q.rtmr[Number(rtmr[1])] ?? "") : q[k as "mrtd" | "mrconfigid" | "mrowner" | "mrownerconfig"];
}

/** Why an entry does not match the quote (every field that misses), or null when it does. */
export function ruleMismatch(r: MeasurementRule, q: QuoteFields): string | null {
  if (r.tee !== q.teeType) return `a${r.tee === "SGX" ? "n SGX enclave" : " TDX trust domain"} entry, and the quote is ${q.teeType}`;
  const misses: string[] = [];
  if (r.tee === "TDX") {
    for (const k of TDX_KEYS) if (r[k] !== null && r[k] !== tdValue(q as TdxQuoteFields, k)) misses.push(k);
    return misses.length === 0 ? null : `${misses.join(", ")} ${misses.length === 1 ? "differs" : "differ"}`;
  }
  const s = q as SgxQuoteFields;
  if (r.mrenclave !== null && r.mrenclave !== s.mrenclave) misses.push("mrenclave differs");
  if (r.mrsigner !== null && r.mrsigner !== s.mrsigner) misses.push("mrsigner differs");
  if (r.isvProdId !== null && r.isvProdId !== s.isvProdId) misses.push(`isvProdId ${s.isvProdId} ≠ ${r.isvProdId}`);
  if (r.minIsvSvn !== null && s.isvSvn < r.minIsvSvn) misses.push(`isvSvn ${s.isvSvn} < ${r.minIsvSvn}`);
  return misses.length === 0 ? null : misses.join(", ");
}

/** What the quote is, as a policy would pin it (the detail of a miss, so the fix can be read off). */
export function identityOf(q: QuoteFields): string {
  if (q.teeType === "SGX") return `mrenclave ${q.mrenclave}, mrsigner ${q.mrsigner}, isvProdId ${q.isvProdId}, isvSvn ${q.isvSvn}`;
  return [`TD mrtd ${q.mrtd}`, ...q.rtmr.map((r, i) => `rtmr${i} ${r}`)].join(", ");
}

/** The policy.measurement outcome: which entry matched, or why each missed. */
export function measurementOutcome(q: QuoteFields, rules: "any" | MeasurementRule[]): { ok: boolean; detail: string } {
  if (rules === "any") return { ok: true, detail: `any measurement accepted (policy says "any"): ${q.teeType === "SGX" ? `mrenclave ${q.mrenclave}` : `TD mrtd ${q.mrtd}`}` };
  const misses: string[] = [];
  for (const [i, r] of rules.entries()) {
    const why = ruleMismatch(r, q);
    if (why === null) return { ok: true, detail: `measurements[${i}] matches (${describeRule(r)})` };
    misses.push(`measurements[${i}]: ${why}`);
  }
  const kinds = rules.some((r) => r.tee === q.teeType) ? "" : ` (the policy lists no ${q.teeType} entry)`;
  return { ok: false, detail: `${identityOf(q)} match no entry${kinds}: ${misses.join("; ")}` };
}

/** The policy.debug outcome: a debuggable enclave or TD is refused unless the policy allows it. */
export function debugOutcome(q: QuoteFields, allowDebug: boolean): { ok: boolean; detail: string } {
  const what = q.teeType === "SGX" ? "enclave" : "TD";
  if (!q.debug) return { ok: true, detail: `production ${what} (DEBUG not set)` };
  if (allowDebug) return { ok: true, detail: `debug ${what}, allowed by allowDebug: true` };
  const why =
    q.teeType === "SGX" ? "the enclave is in DEBUG mode (its memory is readable by the host)" : "the TD is in DEBUG mode (TD attributes bit 0: the host can read and change its memory and CPU state)";
  return { ok: false, detail: `${why}; allowDebug is false` };
}

/** TD attribute bits by name (TDATTRIBUTES, 64 bits little-endian); the others are reserved. */
const TD_ATTRIBUTE_BITS: readonly [number, string][] = [
  [0, "DEBUG"],
  [4, "HGS_PLUS_PROF"],
  [5, "PERF_PROF"],
  [6, "PMT_PROF"],
  [16, "ICSSD"],
  [27, "LASS"],
  [28, "SEPT_VE_DISABLE"],
  [29, "MIGRATABLE"],
  [30, "PKS"],
  [31, "KL"],
  [62, "TPA"],
  [63, "PERFMON"],
];

/** The names of the set TD attribute bits (unnamed set bits as `bit N`), from the quote's hex. */
export function tdAttributeNames(hex: string): string[] {
  const bytes = Buffer.from(hex, "hex");
  const set = (bit: number): boolean => ((bytes[bit >> 3] ?? 0) & (1 << (bit & 7))) !== 0;
  const named = new Map(TD_ATTRIBUTE_BITS);
  const out: string[] = [];
  for (let bit = 0; bit < bytes.length * 8; bit++) if (set(bit)) out.push(named.get(bit) ?? `bit ${bit}`);
  return out;
}
