/**
 * DCAP collateral: TCB info (v2, v3) and QE identity (v2) as Intel's PCS / a PCCS serves them,
 * with their issuer chains and signatures, plus the PCK CRL and the root CA CRL.
 *
 * `prepareCollateral` parses and validates shapes once (pure, no I/O); `checkCollateral` verifies
 * signatures and freshness at a given time against the trust anchors. Signatures are checked
 * over the raw text of the inner object exactly as served.
 */
import { equalBytes, fromHex, toHex } from "../../core/bytes.js";
import { findLeaf, validatePath } from "./chain.js";
import { CollateralError, EvidenceError } from "../../core/errors.js";
import { pemBlocks } from "../asn1/pem.js";
import { rawMembers } from "./raw-json.js";
import type { TrustAnchor } from "./roots.js";
import { verifyRawByCert, verifySignedBy } from "./signatures.js";
import type { TcbStatus } from "../verdict.js";
import { parseCertificate, parseCrl, type Certificate, type Crl } from "../asn1/x509.js";

export const TCB_STATUSES: readonly TcbStatus[] = [
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
];

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

export interface QeTcbLevel {
  isvSvn: number;
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

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

export interface SignedJson<T> {
  /** The exact bytes the signature covers. */
  bytes: Uint8Array;
  /** ECDSA P-256 r‖s. */
  signature: Uint8Array;
  issuerChain: Certificate[];
  parsed: T;
}

export interface Collateral {
  tcbInfo: SignedJson<TcbInfo>;
  qeIdentity: SignedJson<QeIdentity>;
  pckCrl: Crl;
  pckCrlIssuerChain: Certificate[];
  rootCaCrl: Crl;
}

/** The pieces as text / bytes, whatever the source layout (PCS directory, dcap-qvl JSON). */
export interface CollateralParts {
  tcbInfo: string;
  tcbInfoSignature: Uint8Array;
  tcbInfoIssuerChain: string;
  qeIdentity: string;
  qeIdentitySignature: Uint8Array;
  qeIdentityIssuerChain: string;
  pckCrl: Uint8Array;
  pckCrlIssuerChain: string;
  rootCaCrl: Uint8Array;
}

// ---- strict field readers ------------------------------------------------------------------

type Obj = Record<string, unknown>;

function bad(where: string, msg: string): never {
  throw new CollateralError("COLLATERAL_INVALID", `${where}: ${msg}`);
}
function obj(v: unknown, where: string): Obj {
  if (v === null || typeof v !== "object" || Array.isArray(v)) bad(where, "expected an object");
  return v as Obj;
}
function jsonObject(text: string, where: string): Obj {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new CollateralError("COLLATERAL_JSON", `${where}: not valid JSON (${(e as Error).message})`);
  }
  return obj(j, where);
}
function int(o: Obj, k: string, where: string, max = 0xffffffff): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) bad(`${where}.${k}`, `expected an integer 0..${max}, got ${JSON.stringify(v)}`);
  return v;
}
function str(o: Obj, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== "string") bad(`${where}.${k}`, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}
function hexField(o: Obj, k: string, where: string, bytes: number): Uint8Array {
  const s = str(o, k, where);
  if (s.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(s)) bad(`${where}.${k}`, `expected ${bytes} bytes of hex, got "${s}"`);
  return fromHex(s);
}
function date(o: Obj, k: string, where: string): Date {
  const s = str(o, k, where);
  // ISO 8601 UTC as Intel writes it; Date.parse alone accepts too much.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(s)) bad(`${where}.${k}`, `expected an ISO 8601 UTC time, got "${s}"`);
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) bad(`${where}.${k}`, `invalid date "${s}"`);
  return d;
}
function status(o: Obj, where: string): TcbStatus {
  const s = str(o, "tcbStatus", where);
  if (!(TCB_STATUSES as readonly string[]).includes(s)) bad(`${where}.tcbStatus`, `unknown TCB status "${s}"`);
  return s as TcbStatus;
}
function advisories(o: Obj, where: string): string[] {
  const v = o.advisoryIDs;
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) bad(`${where}.advisoryIDs`, "expected an array of strings");
  return v as string[];
}
function svnArray(v: unknown, where: string): number[] {
  if (!Array.isArray(v) || v.length !== 16) bad(where, "expected 16 components");
  return v.map((c, i) => int(obj(c, `${where}[${i}]`), "svn", `${where}[${i}]`, 255));
}

// ---- TCB info and QE identity --------------------------------------------------------------

/** Levels keyed by one ISVSVN, as in the QE identity and the TDX module identities. */
function isvSvnLevels(v: unknown, where: string): QeTcbLevel[] {
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

// ---- assembling ----------------------------------------------------------------------------

function chain(pem: string, what: string): Certificate[] {
  const ders = wrap(what, () => pemBlocks(pem));
  if (ders.length === 0) throw new CollateralError("COLLATERAL_MISSING", `${what}: no certificate found`);
  return ders.map((d, i) => wrap(`${what} certificate #${i + 1}`, () => parseCertificate(d)));
}

function crl(bytes: Uint8Array, what: string): Crl {
  // PCS serves CRLs as DER or PEM depending on the request; accept both.
  const head = Buffer.from(bytes.subarray(0, 32)).toString("latin1");
  const der = head.includes("-----BEGIN") ? wrap(what, () => pemBlocks(Buffer.from(bytes).toString("latin1"), "X509 CRL"))[0] : bytes;
  if (!der) throw new CollateralError("COLLATERAL_MISSING", `${what}: no CRL found`);
  return wrap(what, () => parseCrl(der));
}

function wrap<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CollateralError) throw e;
    const code = e instanceof EvidenceError ? e.code : "COLLATERAL_INVALID";
    throw new CollateralError(code, `${what}: ${(e as Error).message}`);
  }
}

function signature(sig: Uint8Array, what: string): Uint8Array {
  if (sig.length !== 64) throw new CollateralError("COLLATERAL_INVALID", `${what}: signature must be 64 bytes (r‖s), got ${sig.length}`);
  return sig;
}

export function prepareCollateral(p: CollateralParts): Collateral {
  return {
    tcbInfo: {
      bytes: new TextEncoder().encode(p.tcbInfo),
      signature: signature(p.tcbInfoSignature, "tcbInfo"),
      issuerChain: chain(p.tcbInfoIssuerChain, "TCB info issuer chain"),
      parsed: parseTcbInfo(p.tcbInfo),
    },
    qeIdentity: {
      bytes: new TextEncoder().encode(p.qeIdentity),
      signature: signature(p.qeIdentitySignature, "enclaveIdentity"),
      issuerChain: chain(p.qeIdentityIssuerChain, "QE identity issuer chain"),
      parsed: parseQeIdentity(p.qeIdentity),
    },
    pckCrl: crl(p.pckCrl, "PCK CRL"),
    pckCrlIssuerChain: chain(p.pckCrlIssuerChain, "PCK CRL issuer chain"),
    rootCaCrl: crl(p.rootCaCrl, "root CA CRL"),
  };
}

/** A PCS / PCCS response body `{"tcbInfo": {...}, "signature": "hex"}` → the signed text and signature. */
export function splitSignedBody(body: string, member: "tcbInfo" | "enclaveIdentity", what: string): { text: string; signature: Uint8Array } {
  const { value, raw } = rawMembers(body, what);
  const text = raw.get(member);
  if (text === undefined) throw new CollateralError("COLLATERAL_MISSING", `${what}: no "${member}" member`);
  const sig = value.signature;
  if (typeof sig !== "string" || sig.length !== 128 || !/^[0-9a-fA-F]*$/.test(sig)) {
    throw new CollateralError("COLLATERAL_INVALID", `${what}: "signature" must be 64 bytes of hex`);
  }
  return { text, signature: fromHex(sig) };
}

// ---- verification --------------------------------------------------------------------------

export interface CollateralCheck {
  signature: { ok: boolean; detail: string };
  /** `stale`: the only problem is a passed nextUpdate (never set for pieces issued in the future). */
  fresh: { ok: boolean; detail: string; nextUpdate: Date; issued: Date; stale: boolean };
}

function verifySignedJson(s: SignedJson<unknown>, what: string, anchor: TrustAnchor, at: Date): string | null {
  const signer = findLeaf(s.issuerChain);
  if (typeof signer === "string") return `${what} issuer chain: ${signer}`;
  const path = validatePath(signer, s.issuerChain, [anchor], at);
  if (!path.ok) return `${what} issuer chain: ${path.reason}`;
  if (!verifyRawByCert(s.bytes, s.signature, signer, true)) return `${what} signature does not verify under ${signer.subjectText}`;
  return null;
}

/**
 * Signatures: TCB info and QE identity by their signing certificate, chained to `anchor` (the
 * anchor of the PCK chain: collateral from another root never vouches for this quote); the root
 * CA CRL by the anchor. The PCK CRL is checked against the PCK chain by the caller, which knows
 * which CA issued the PCK certificate.
 */
export function checkCollateral(c: Collateral, anchor: TrustAnchor, at: Date): CollateralCheck {
  const problems: string[] = [];
  const t = verifySignedJson(c.tcbInfo, "TCB info", anchor, at);
  if (t) problems.push(t);
  const q = verifySignedJson(c.qeIdentity, "QE identity", anchor, at);
  if (q) problems.push(q);
  if (!verifySignedBy(c.rootCaCrl, anchor.cert)) problems.push(`root CA CRL is not signed by ${anchor.cert.subjectText}`);
  // The TCB signing certificate is issued by the root: the root CA CRL covers it.
  for (const cert of [...c.tcbInfo.issuerChain, ...c.qeIdentity.issuerChain]) {
    if (equalBytes(cert.issuer, c.rootCaCrl.issuer) && !equalBytes(cert.issuer, cert.subject) && c.rootCaCrl.revoked.has(cert.serialHex)) problems.push(`${cert.subjectText} (serial ${cert.serialHex}) is revoked by the root CA CRL`);
  }

  const pieces: [string, Date, Date | null][] = [
    ["TCB info", c.tcbInfo.parsed.issueDate, c.tcbInfo.parsed.nextUpdate],
    ["QE identity", c.qeIdentity.parsed.issueDate, c.qeIdentity.parsed.nextUpdate],
    ["PCK CRL", c.pckCrl.thisUpdate, c.pckCrl.nextUpdate],
    ["root CA CRL", c.rootCaCrl.thisUpdate, c.rootCaCrl.nextUpdate],
  ];
  const stale: string[] = [];
  let future = false;
  let nextUpdate = new Date(8.64e15);
  let oldest = new Date(8.64e15);
  for (const [name, issued, next] of pieces) {
    if (at < issued) {
      stale.push(`${name} is issued ${issued.toISOString()}, after the verification time`);
      future = true;
    }
    if (issued < oldest) oldest = issued;
    if (next !== null) {
      if (at > next) stale.push(`${name} nextUpdate ${next.toISOString()} has passed`);
      if (next < nextUpdate) nextUpdate = next;
    }
  }
  return {
    signature: problems.length
      ? { ok: false, detail: problems.join("; ") }
      : { ok: true, detail: `TCB info, QE identity and root CA CRL signed under ${anchor.cert.subjectText}` },
    fresh: stale.length
      ? { ok: false, detail: stale.join("; "), nextUpdate, issued: oldest, stale: !future }
      : { ok: true, detail: `all collateral current until ${nextUpdate.toISOString()}`, nextUpdate, issued: oldest, stale: false },
  };
}
