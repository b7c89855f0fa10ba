/**
 * Intel's SGX extension in PCK certificates (OID 1.2.840.113741.1.13.1), as laid out in Intel's
 * "SGX PCK Certificate and CRL Profile". Pure; no I/O.
 *
 *   SGXExtensions ::= SEQUENCE OF SEQUENCE { id OID, value ANY }
 *     .1 PPID                OCTET STRING (16)
 *     .2 TCB                 SEQUENCE OF SEQUENCE { id OID, value }:
 *                              .2.1 … .2.16 SGX TCB components INTEGER (0..255)
 *                              .2.17 PCESVN INTEGER (0..65535)
 *                              .2.18 CPUSVN OCTET STRING (16)
 *     .3 PCE-ID              OCTET STRING (2)
 *     .4 FMSPC               OCTET STRING (6)
 *     .5 SGX Type            ENUMERATED (0 standard, 1 scalable, 2 scalable with integrity)
 *     .6 PlatformInstanceID  OCTET STRING (16)            (Platform CA certificates only)
 *     .7 Configuration       SEQUENCE OF SEQUENCE { id OID, value BOOLEAN }:
 *                              .7.1 dynamicPlatform, .7.2 cachedKeys, .7.3 SMTEnabled
 *
 * Fields are matched by OID, not by position; unknown fields are skipped (their structure is
 * still checked); a known field twice is refused. Errors: DerError with code
 * PCK_EXTENSION_MISSING (the extension, or a required field, is absent: the message names it) or
 * PCK_EXTENSION_INVALID (wrong type or size, or not DER at all).
 * Note: the Intel SGX SDK's RA-TLS certificates reuse this OID for a raw quote; such a value
 * is PCK_EXTENSION_INVALID here.
 */
import { DerSeq, Tag, readBoolean, readEnumerated, readExactTlv, readOctetString, readOid, readSmallUnsigned, type Tlv } from "./der.js";
import { DerError } from "../../core/errors.js";
import type { Certificate } from "./x509.js";

export const SGX_EXTENSION_OID = "1.2.840.113741.1.13.1";
const P = SGX_EXTENSION_OID;

export interface PckConfiguration {
  dynamicPlatform?: boolean;
  cachedKeys?: boolean;
  smtEnabled?: boolean;
}

export interface PckExtension {
  ppid: Uint8Array;
  /** SGX TCB components 1..16, in order. */
  tcbComponents: number[];
  pceSvn: number;
  cpuSvn: Uint8Array;
  pceId: Uint8Array;
  fmspc: Uint8Array;
  sgxType: number;
  platformInstanceId?: Uint8Array;
  configuration?: PckConfiguration;
}

const INVALID = "PCK_EXTENSION_INVALID";
const MISSING = "PCK_EXTENSION_MISSING";

function missing(field: string): never {
  throw new DerError(MISSING, `PCK certificate SGX extension: required field ${field} is missing`);
}

function fixedOctets(buf: Uint8Array, tlv: Tlv, what: string, size: number): Uint8Array {
  if (tlv.tag !== Tag.OCTET_STRING) throw new DerError(INVALID, `${what}: expected OCTET STRING, found 0x${tlv.tag.toString(16)}`, tlv.start);
  const v = readOctetString(buf, tlv, what);
  if (v.length !== size) throw new DerError(INVALID, `${what}: expected ${size} bytes, found ${v.length}`, tlv.start);
  return v;
}

function integer(buf: Uint8Array, tlv: Tlv, what: string, max: number): number {
  if (tlv.tag !== Tag.INTEGER) throw new DerError(INVALID, `${what}: expected INTEGER, found 0x${tlv.tag.toString(16)}`, tlv.start);
  try {
    return readSmallUnsigned(buf, tlv, what, max);
  } catch (e) {
    if (e instanceof DerError && e.code === "DER_INTEGER") throw new DerError(INVALID, `${what}: not an integer in 0..${max}`, tlv.start);
    throw e;
  }
}

/** Content bytes of the OID 1.2.840.113741.1.13.1. */
const SGX_OID_BYTES = [0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01];

/**
 * Iterate SEQUENCE OF SEQUENCE { OID, value } whose OIDs sit under 1.2.840.113741.1.13.1 followed
 * by `prefixArcs` (each < 128), calling `f` with the next arc (1..127), or -1 for any other OID.
 * OIDs are matched on their bytes: decoding every one to a string would dominate the cost.
 */
function forEachField(buf: Uint8Array, seq: Tlv, path: string, prefixArcs: readonly number[], f: (arc: number, value: Tlv) => void): void {
  if (seq.tag !== Tag.SEQUENCE) throw new DerError(INVALID, `${path}: expected SEQUENCE, found 0x${seq.tag.toString(16)}`, seq.start);
  const seenArcs = new Uint8Array(128);
  let seenOther: Set<string> | undefined;
  const want = SGX_OID_BYTES.length + prefixArcs.length + 1;
  const list = new DerSeq(buf, seq, path, INVALID);
  while (!list.done) {
    const item = new DerSeq(buf, list.next(Tag.SEQUENCE, "field"), path, INVALID, "field");
    const oidTlv = item.next(Tag.OID, "id");
    const value = item.any("value");
    item.finish();
    let arc = -1;
    const o = oidTlv.contentStart;
    if (oidTlv.contentEnd - o === want) {
      let match = true;
      for (let i = 0; i < SGX_OID_BYTES.length && match; i++) match = buf[o + i] === SGX_OID_BYTES[i];
      for (let i = 0; i < prefixArcs.length && match; i++) match = buf[o + SGX_OID_BYTES.length + i] === prefixArcs[i];
      const last = buf[oidTlv.contentEnd - 1]!;
      if (match && last >= 1 && last < 0x80) arc = last;
    }
    if (arc > 0) {
      if (seenArcs[arc]) throw new DerError(INVALID, `${path}: field ${readOid(buf, oidTlv, path)} appears twice`, oidTlv.start);
      seenArcs[arc] = 1;
    } else {
      const oid = readOid(buf, oidTlv, path); // unknown field: still a valid OID, and not repeated
      seenOther ??= new Set();
      if (seenOther.has(oid)) throw new DerError(INVALID, `${path}: field ${oid} appears twice`, oidTlv.start);
      seenOther.add(oid);
    }
    f(arc, value);
  }
}

const COMP_NAMES = Array.from({ length: 16 }, (_, i) => `sgxExtension.tcb.comp${String(i + 1).padStart(2, "0")}`);

function parseTcb(buf: Uint8Array, tlv: Tlv): { tcbComponents: number[]; pceSvn: number; cpuSvn: Uint8Array } {
  const path = "sgxExtension.tcb";
  const comps: (number | undefined)[] = new Array<number | undefined>(16).fill(undefined);
  let pceSvn: number | undefined;
  let cpuSvn: Uint8Array | undefined;
  forEachField(buf, tlv, path, [2], (arc, value) => {
    if (arc >= 1 && arc <= 16) comps[arc - 1] = integer(buf, value, COMP_NAMES[arc - 1]!, 0xff);
    else if (arc === 17) pceSvn = integer(buf, value, `${path}.pcesvn`, 0xffff);
    else if (arc === 18) cpuSvn = fixedOctets(buf, value, `${path}.cpusvn`, 16);
  });
  const tcbComponents: number[] = [];
  for (let i = 0; i < 16; i++) {
    const c = comps[i];
    if (c === undefined) missing(`tcb.comp${String(i + 1).padStart(2, "0")} (${P}.2.${i + 1})`);
    tcbComponents.push(c);
  }
  if (pceSvn === undefined) missing(`tcb.pcesvn (${P}.2.17)`);
  if (cpuSvn === undefined) missing(`tcb.cpusvn (${P}.2.18)`);
  return { tcbComponents, pceSvn, cpuSvn };
}

function parseConfiguration(buf: Uint8Array, tlv: Tlv): PckConfiguration {
  const path = "sgxExtension.configuration";
  const out: PckConfiguration = {};
  const names = ["", "dynamicPlatform", "cachedKeys", "smtEnabled"] as const;
  forEachField(buf, tlv, path, [7], (arc, value) => {
    if (arc < 1 || arc > 3) return;
    const name = names[arc]!;
    if (name === "") return;
    if (value.tag !== Tag.BOOLEAN) throw new DerError(INVALID, `${path}.${name}: expected BOOLEAN, found 0x${value.tag.toString(16)}`, value.start);
    out[name] = readBoolean(buf, value, `${path}.${name}`);
  });
  return out;
}

/** Parse the SGX extension from the DER bytes buf[start, end) (the extnValue content). */
function parseAt(buf: Uint8Array, start: number, end: number): PckExtension {
  const top = readExactTlv(buf, start, end, "sgxExtension");
  let ppid: Uint8Array | undefined;
  let tcb: ReturnType<typeof parseTcb> | undefined;
  let pceId: Uint8Array | undefined;
  let fmspc: Uint8Array | undefined;
  let sgxType: number | undefined;
  let platformInstanceId: Uint8Array | undefined;
  let configuration: PckConfiguration | undefined;
  forEachField(buf, top, "sgxExtension", [], (arc, value) => {
    switch (arc) {
      case 1:
        ppid = fixedOctets(buf, value, "sgxExtension.ppid", 16);
        break;
      case 2:
        tcb = parseTcb(buf, value);
        break;
      case 3:
        pceId = fixedOctets(buf, value, "sgxExtension.pceId", 2);
        break;
      case 4:
        fmspc = fixedOctets(buf, value, "sgxExtension.fmspc", 6);
        break;
      case 5:
        if (value.tag !== Tag.ENUMERATED) throw new DerError(INVALID, `sgxExtension.sgxType: expected ENUMERATED, found 0x${value.tag.toString(16)}`, value.start);
        sgxType = readEnumerated(buf, value, "sgxExtension.sgxType", 0xff);
        break;
      case 6:
        platformInstanceId = fixedOctets(buf, value, "sgxExtension.platformInstanceId", 16);
        break;
      case 7:
        configuration = parseConfiguration(buf, value);
        break;
    }
  });
  if (ppid === undefined) missing(`ppid (${P}.1)`);
  if (tcb === undefined) missing(`tcb (${P}.2)`);
  if (pceId === undefined) missing(`pceId (${P}.3)`);
  if (fmspc === undefined) missing(`fmspc (${P}.4)`);
  if (sgxType === undefined) missing(`sgxType (${P}.5)`);
  const out: PckExtension = { ppid, tcbComponents: tcb.tcbComponents, pceSvn: tcb.pceSvn, cpuSvn: tcb.cpuSvn, pceId, fmspc, sgxType };
  if (platformInstanceId !== undefined) out.platformInstanceId = platformInstanceId;
  if (configuration !== undefined) out.configuration = configuration;
  return out;
}

/** Every failure is PCK_EXTENSION_MISSING or PCK_EXTENSION_INVALID (DER_* errors are re-coded). */
function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DerError) {
      if (e.code === MISSING || e.code === INVALID) throw e;
      const suffix = e.offset === undefined ? "" : ` (at offset ${e.offset})`;
      const message = suffix !== "" && e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.message;
      throw new DerError(INVALID, `PCK certificate SGX extension is not valid DER: ${message}`, e.offset);
    }
    throw new DerError(INVALID, `PCK certificate SGX extension: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The SGX extension's content (extnValue OCTET STRING content) parsed on its own. */
export function parseSgxExtensionValue(value: Uint8Array): PckExtension {
  return guard(() => parseAt(value, 0, value.length));
}

/** The SGX extension of a PCK certificate. Offsets in errors are relative to cert.der. */
export function parsePckExtension(cert: Certificate): PckExtension {
  return guard(() => {
    const ext = cert.extensions.find((e) => e.oid === SGX_EXTENSION_OID);
    if (ext === undefined) throw new DerError(MISSING, `${cert.subjectText}: no SGX extension (${SGX_EXTENSION_OID})`);
    const v = ext.value;
    const der = cert.der;
    const start = v.byteOffset - der.byteOffset;
    if (v.buffer === der.buffer && start >= 0 && start + v.length <= der.length) return parseAt(der, start, start + v.length);
    return parseAt(v, 0, v.length);
  });
}
