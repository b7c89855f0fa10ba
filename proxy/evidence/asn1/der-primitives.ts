/** DER primitives: OBJECT IDENTIFIER, INTEGER, ENUMERATED, BOOLEAN, NULL, BIT STRING, OCTET STRING. */
import { DerError } from "../../core/errors.js";
import { Tag, contentOf, tagName, type Tlv } from "./der-reader.js";

function primitive(tlv: Tlv, tag: number, what: string): void {
  if (tlv.tag !== tag) throw new DerError("DER_TAG", `${what}: expected tag ${tagName(tag)}, found ${tagName(tlv.tag)}`, tlv.start);
}

/**
 * Dotted-decimal form of OID content bytes (without tag and length). Strict base-128: no
 * 0x80 padding octet, no truncated last sub-identifier. Arcs beyond 2^53 are exact (BigInt).
 */
export function decodeOid(bytes: Uint8Array, what = "OID", offset?: number): string {
  const n = bytes.length;
  if (n === 0) throw new DerError("DER_OID", `${what}: empty OBJECT IDENTIFIER`, offset);
  if ((bytes[n - 1]! & 0x80) !== 0) throw new DerError("DER_OID", `${what}: last sub-identifier is truncated`, offset);
  let out = "";
  let v = 0;
  let big: bigint | null = null;
  let startOfArc = true;
  let first = true;
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (startOfArc && b === 0x80) {
      throw new DerError("DER_OID", `${what}: non-minimal sub-identifier (leading 0x80)`, offset === undefined ? undefined : offset + i);
    }
    startOfArc = false;
    if (big !== null) big = (big << 7n) | BigInt(b & 0x7f);
    else if (v >= 2 ** 46) big = (BigInt(v) << 7n) | BigInt(b & 0x7f);
    else v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      if (first) {
        first = false;
        if (big !== null) out = `2.${big - 80n}`;
        else out = v < 40 ? `0.${v}` : v < 80 ? `1.${v - 40}` : `2.${v - 80}`;
      } else {
        out += `.${big !== null ? big.toString() : v}`;
      }
      v = 0;
      big = null;
      startOfArc = true;
    }
  }
  return out;
}

export function readOid(buf: Uint8Array, tlv: Tlv, what = "OID"): string {
  primitive(tlv, Tag.OID, what);
  return decodeOid(contentOf(buf, tlv), what, tlv.contentStart);
}

function checkIntegerContent(buf: Uint8Array, tlv: Tlv, what: string): void {
  const len = tlv.contentEnd - tlv.contentStart;
  if (len === 0) throw new DerError("DER_INTEGER", `${what}: empty INTEGER`, tlv.start);
  if (len > 1) {
    const a = buf[tlv.contentStart]!;
    const b = buf[tlv.contentStart + 1]!;
    if ((a === 0x00 && b < 0x80) || (a === 0xff && b >= 0x80)) {
      throw new DerError("DER_INTEGER", `${what}: non-minimal INTEGER encoding`, tlv.contentStart);
    }
  }
}

/**
 * A non-negative INTEGER (or an implicitly tagged one: pass `tag`) as its unsigned magnitude:
 * big-endian, the sign octet stripped (zero is one 0x00 octet). Negative values are refused.
 */
export function readUnsigned(buf: Uint8Array, tlv: Tlv, what = "INTEGER", tag: number = Tag.INTEGER): Uint8Array {
  primitive(tlv, tag, what);
  checkIntegerContent(buf, tlv, what);
  const first = buf[tlv.contentStart]!;
  if (first & 0x80) throw new DerError("DER_INTEGER", `${what}: negative INTEGER`, tlv.contentStart);
  const len = tlv.contentEnd - tlv.contentStart;
  return first === 0 && len > 1 ? buf.subarray(tlv.contentStart + 1, tlv.contentEnd) : contentOf(buf, tlv);
}

/** A non-negative INTEGER that must be at most `max` (default 2^53 - 1), as a number. */
export function readSmallUnsigned(buf: Uint8Array, tlv: Tlv, what = "INTEGER", max = Number.MAX_SAFE_INTEGER, tag: number = Tag.INTEGER): number {
  const mag = readUnsigned(buf, tlv, what, tag);
  if (mag.length > 7) throw new DerError("DER_INTEGER", `${what}: INTEGER larger than ${max}`, tlv.contentStart);
  let v = 0;
  for (let i = 0; i < mag.length; i++) v = v * 256 + mag[i]!;
  if (v > max) throw new DerError("DER_INTEGER", `${what}: INTEGER ${v} larger than ${max}`, tlv.contentStart);
  return v;
}

/** ENUMERATED (non-negative, at most `max`). */
export function readEnumerated(buf: Uint8Array, tlv: Tlv, what = "ENUMERATED", max = 0x7fffffff): number {
  return readSmallUnsigned(buf, tlv, what, max, Tag.ENUMERATED);
}

/** DER BOOLEAN: exactly one octet, 0x00 or 0xff. */
export function readBoolean(buf: Uint8Array, tlv: Tlv, what = "BOOLEAN"): boolean {
  primitive(tlv, Tag.BOOLEAN, what);
  if (tlv.contentEnd - tlv.contentStart !== 1) throw new DerError("DER_BOOLEAN", `${what}: BOOLEAN must be one octet`, tlv.start);
  const v = buf[tlv.contentStart]!;
  if (v !== 0x00 && v !== 0xff) throw new DerError("DER_BOOLEAN", `${what}: BOOLEAN octet 0x${v.toString(16)} is not DER (0x00 or 0xff)`, tlv.contentStart);
  return v === 0xff;
}

export function readNull(tlv: Tlv, what = "NULL"): void {
  primitive(tlv, Tag.NULL, what);
  if (tlv.contentEnd !== tlv.contentStart) throw new DerError("DER_NULL", `${what}: NULL with content`, tlv.start);
}

export interface BitString {
  /** The content octets after the unused-bits octet. */
  bytes: Uint8Array;
  unusedBits: number;
}

/** BIT STRING; unused bits (0..7) must be zero, and there are none in an empty string. */
export function readBitString(buf: Uint8Array, tlv: Tlv, what = "BIT STRING", tag: number = Tag.BIT_STRING): BitString {
  primitive(tlv, tag, what);
  const len = tlv.contentEnd - tlv.contentStart;
  if (len === 0) throw new DerError("DER_BITSTRING", `${what}: BIT STRING without the unused-bits octet`, tlv.start);
  const unused = buf[tlv.contentStart]!;
  if (unused > 7 || (len === 1 && unused !== 0)) {
    throw new DerError("DER_BITSTRING", `${what}: invalid unused-bits count ${unused}`, tlv.contentStart);
  }
  if (unused !== 0 && (buf[tlv.contentEnd - 1]! & ((1 << unused) - 1)) !== 0) {
    throw new DerError("DER_BITSTRING", `${what}: unused bits are not zero`, tlv.contentEnd - 1);
  }
  return { bytes: buf.subarray(tlv.contentStart + 1, tlv.contentEnd), unusedBits: unused };
}

/** BIT STRING that must hold whole octets (keys, signatures). */
export function readBitStringBytes(buf: Uint8Array, tlv: Tlv, what = "BIT STRING"): Uint8Array {
  const bs = readBitString(buf, tlv, what);
  if (bs.unusedBits !== 0) throw new DerError("DER_BITSTRING", `${what}: ${bs.unusedBits} unused bits where whole octets are required`, tlv.contentStart);
  return bs.bytes;
}

/** OCTET STRING (primitive form only, as DER requires), or an implicitly tagged one (`tag`). */
export function readOctetString(buf: Uint8Array, tlv: Tlv, what = "OCTET STRING", tag: number = Tag.OCTET_STRING): Uint8Array {
  primitive(tlv, tag, what);
  return contentOf(buf, tlv);
}
