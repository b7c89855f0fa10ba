/**
 * A minimal, strict DER reader. Pure; no I/O; no copies (every byte result is a subarray of the
 * input). Everything it refuses is a DerError with a stable code:
 *   DER_TRUNCATED  an element (or its header) runs past the end of the data
 *   DER_LENGTH     a length that overflows its enclosing element, or a non-minimal / oversized length
 *   DER_INDEFINITE the BER indefinite length form
 *   DER_TAG        high-tag-number form, end-of-contents, or an unexpected tag
 *   DER_DEPTH      nesting deeper than MAX_DEPTH
 *   DER_TRAILING   bytes left after the element that should have been the last one
 *   DER_INTEGER / DER_BOOLEAN / DER_BITSTRING / DER_NULL / DER_OID / DER_TIME / DER_STRING
 *                  a primitive whose content is not valid DER for its type
 *   DER_RANGE      caller passed an offset / end outside the buffer
 * Offsets in errors are relative to the buffer the caller passed.
 */
import { DerError } from "../../core/errors.js";

export const MAX_DEPTH = 32;

/** Identifier octets of the universal types we read (constructed bit included for SEQUENCE / SET). */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export type TagClass = "universal" | "application" | "context" | "private";
const CLASSES: readonly TagClass[] = ["universal", "application", "context", "private"];

export interface Tlv {
  /** The identifier octet: class, constructed bit and tag number (e.g. 0x30, 0xa0). */
  tag: number;
  /** Tag number (low five bits; the high-tag-number form is refused). */
  number: number;
  class: TagClass;
  constructed: boolean;
  /** Offset of the identifier octet. */
  start: number;
  headerLength: number;
  contentStart: number;
  contentEnd: number;
  /** Offset just past the element (DER has no end-of-contents octets, so equal to contentEnd). */
  end: number;
  /** Nesting depth (0 for a top-level element). */
  depth: number;
}

function tagName(tag: number): string {
  return `0x${tag.toString(16).padStart(2, "0")}`;
}

/**
 * Read one TLV starting at `offset`; it must end at or before `end`.
 * `what` (and `field`, appended as `what.field`) names the element in error messages.
 */
export function readTlv(buf: Uint8Array, offset: number, end: number = buf.length, depth = 0, what = "DER", field?: string): Tlv {
  // Messages are composed only on failure: this runs for every element on hot paths.
  if (
    offset >= 0 && end <= buf.length && offset + 1 < end && Number.isInteger(offset) && Number.isInteger(end) && depth <= MAX_DEPTH
  ) {
    const id = buf[offset]!;
    const first = buf[offset + 1]!;
    if ((id & 0x1f) !== 0x1f && id !== 0 && first < 0x80 && first <= end - offset - 2) {
      return makeTlv(id, offset, 2, first, depth);
    }
  }
  return readTlvSlow(buf, offset, end, depth, field === undefined ? what : `${what}.${field}`);
}

function makeTlv(id: number, start: number, headerLength: number, len: number, depth: number): Tlv {
  const contentStart = start + headerLength;
  return {
    tag: id,
    number: id & 0x1f,
    class: CLASSES[id >> 6]!,
    constructed: (id & 0x20) !== 0,
    start,
    headerLength,
    contentStart,
    contentEnd: contentStart + len,
    end: contentStart + len,
    depth,
  };
}

function readTlvSlow(buf: Uint8Array, offset: number, end: number, depth: number, what: string): Tlv {
  if (!Number.isInteger(offset) || !Number.isInteger(end) || offset < 0 || end > buf.length || offset > end) {
    throw new DerError("DER_RANGE", `${what}: range [${offset}, ${end}) is outside the ${buf.length}-byte buffer`, offset);
  }
  if (depth > MAX_DEPTH) throw new DerError("DER_DEPTH", `${what}: nesting deeper than ${MAX_DEPTH}`, offset);
  const outOf = end === buf.length ? "the data" : "its enclosing element";
  if (offset >= end) throw new DerError("DER_TRUNCATED", `${what}: expected an element, found the end of ${outOf}`, offset);
  const id = buf[offset]!;
  if ((id & 0x1f) === 0x1f) throw new DerError("DER_TAG", `${what}: high tag number form (${tagName(id)}) is not supported`, offset);
  if (id === 0) throw new DerError("DER_TAG", `${what}: end-of-contents octets (indefinite length) are not DER`, offset);
  if (offset + 1 >= end) throw new DerError("DER_TRUNCATED", `${what}: length octet missing (end of ${outOf})`, offset);
  const first = buf[offset + 1]!;
  let p = offset + 2;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else if (first === 0x80) {
    throw new DerError("DER_INDEFINITE", `${what}: indefinite length is not DER`, offset + 1);
  } else {
    const n = first & 0x7f;
    if (n > 4) throw new DerError("DER_LENGTH", `${what}: length of ${n} octets is not supported`, offset + 1);
    if (p + n > end) throw new DerError("DER_TRUNCATED", `${what}: length octets run past the end of ${outOf}`, offset + 1);
    if (buf[p] === 0) throw new DerError("DER_LENGTH", `${what}: non-minimal length encoding (leading zero octet)`, offset + 1);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    if (len < 0x80) throw new DerError("DER_LENGTH", `${what}: non-minimal length encoding (long form for ${len})`, offset + 1);
    p += n;
  }
  if (len > end - p) {
    throw new DerError(
      end === buf.length ? "DER_TRUNCATED" : "DER_LENGTH",
      `${what}: length ${len} runs past the end of ${outOf} (${end - p} bytes left)`,
      offset,
    );
  }
  return makeTlv(id, offset, p - offset, len, depth);
}

/** Read the single element that must fill buf[offset, end) exactly. */
export function readExactTlv(buf: Uint8Array, offset = 0, end: number = buf.length, what = "DER"): Tlv {
  const t = readTlv(buf, offset, end, 0, what);
  if (t.end !== end) throw new DerError("DER_TRAILING", `${what}: ${end - t.end} trailing bytes after the element`, t.end);
  return t;
}

/** The children of a constructed element (SEQUENCE, SET, explicit tag), which must fill it exactly. */
export function children(buf: Uint8Array, parent: Tlv, what = "DER"): Tlv[] {
  if (!parent.constructed) throw new DerError("DER_TAG", `${what}: expected a constructed element, found ${tagName(parent.tag)}`, parent.start);
  const out: Tlv[] = [];
  let p = parent.contentStart;
  while (p < parent.contentEnd) {
    const t = readTlv(buf, p, parent.contentEnd, parent.depth + 1, what);
    out.push(t);
    p = t.end;
  }
  return out;
}

/**
 * Check that buf[offset, end) is one well-formed DER element, descending into every constructed
 * element (not into OCTET / BIT STRING contents); refuses nesting deeper than MAX_DEPTH.
 */
export function checkDer(buf: Uint8Array, offset = 0, end: number = buf.length, what = "DER"): Tlv {
  const top = readExactTlv(buf, offset, end, what);
  const walk = (t: Tlv): void => {
    if (!t.constructed) return;
    let p = t.contentStart;
    while (p < t.contentEnd) {
      const c = readTlv(buf, p, t.contentEnd, t.depth + 1, what);
      walk(c);
      p = c.end;
    }
  };
  walk(top);
  return top;
}

/** Throws `code` (DER_TAG by default) unless the element's identifier octet is `tag`. */
export function expectTag(tlv: Tlv, tag: number, what: string, code = "DER_TAG"): void {
  if (tlv.tag !== tag) throw new DerError(code, `${what}: expected tag ${tagName(tag)}, found ${tagName(tlv.tag)}`, tlv.start);
}

export function contentOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.contentStart, tlv.contentEnd);
}

/** The whole encoding (identifier, length and content). */
export function encodingOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end);
}

/**
 * Sequential reader over the children of one constructed element, for fixed schemas.
 * Unexpected tags, missing elements and leftover elements are reported with `code`
 * (e.g. X509_STRUCTURE); encoding errors keep their DER_* codes.
 */
export class DerSeq {
  private pos: number;
  private readonly base: string;
  private readonly field: string | undefined;
  constructor(
    readonly buf: Uint8Array,
    readonly parent: Tlv,
    path: string,
    readonly code = "DER_TAG",
    /** Appended to `path` (as `path.field`) in messages; composed only on failure. */
    field?: string,
  ) {
    this.base = path;
    this.field = field;
    if (!parent.constructed) throw new DerError(code, `${this.path}: expected a constructed element, found ${tagName(parent.tag)}`, parent.start);
    this.pos = parent.contentStart;
  }

  /** The path of this element in error messages. */
  get path(): string {
    return this.field === undefined ? this.base : `${this.base}.${this.field}`;
  }

  get done(): boolean {
    return this.pos >= this.parent.contentEnd;
  }

  /** Identifier octet of the next element, or -1 at the end. */
  peekTag(): number {
    return this.done ? -1 : this.buf[this.pos]!;
  }

  /** Next element, whatever its tag. */
  any(name: string): Tlv {
    if (this.done) throw new DerError(this.code, `${this.path}.${name}: missing`, this.pos);
    const t = readTlv(this.buf, this.pos, this.parent.contentEnd, this.parent.depth + 1, this.base, this.field === undefined ? name : `${this.field}.${name}`);
    this.pos = t.end;
    return t;
  }

  /** Next element, which must have identifier octet `tag`. */
  next(tag: number, name: string): Tlv {
    if (this.done) throw new DerError(this.code, `${this.path}.${name}: missing`, this.pos);
    const got = this.buf[this.pos]!;
    if (got !== tag) throw new DerError(this.code, `${this.path}.${name}: expected tag ${tagName(tag)}, found ${tagName(got)}`, this.pos);
    return this.any(name);
  }

  /** Next element if its identifier octet is `tag`, else null (nothing consumed). */
  optional(tag: number, name: string): Tlv | null {
    return this.peekTag() === tag ? this.any(name) : null;
  }

  /** Every element must have been read. */
  finish(): void {
    if (!this.done) {
      throw new DerError(this.code, `${this.path}: unexpected element ${tagName(this.buf[this.pos]!)} after the last expected field`, this.pos);
    }
  }
}

// ---- primitives --------------------------------------------------------------------------------

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

// ---- time --------------------------------------------------------------------------------------

function digits(buf: Uint8Array, p: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = buf[p + i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/**
 * UTCTime (YYMMDDHHMMSSZ; YY < 50 is 20YY) or GeneralizedTime (YYYYMMDDHHMMSSZ), both in the DER
 * form RFC 5280 requires: seconds present, 'Z', no fraction.
 */
export function readTime(buf: Uint8Array, tlv: Tlv, what = "Time"): Date {
  const utc = tlv.tag === Tag.UTC_TIME;
  if (!utc && tlv.tag !== Tag.GENERALIZED_TIME) {
    throw new DerError("DER_TAG", `${what}: expected UTCTime or GeneralizedTime, found ${tagName(tlv.tag)}`, tlv.start);
  }
  const p = tlv.contentStart;
  const len = tlv.contentEnd - p;
  const want = utc ? 13 : 15;
  const kind = utc ? "UTCTime" : "GeneralizedTime";
  if (len !== want || buf[tlv.contentEnd - 1] !== 0x5a /* Z */) {
    throw new DerError("DER_TIME", `${what}: ${kind} must be ${utc ? "YYMMDDHHMMSSZ" : "YYYYMMDDHHMMSSZ"}`, tlv.start);
  }
  const yl = utc ? 2 : 4;
  let year = digits(buf, p, yl);
  const month = digits(buf, p + yl, 2);
  const day = digits(buf, p + yl + 2, 2);
  const hour = digits(buf, p + yl + 4, 2);
  const minute = digits(buf, p + yl + 6, 2);
  const second = digits(buf, p + yl + 8, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) {
    throw new DerError("DER_TIME", `${what}: ${kind} has a non-digit`, tlv.contentStart);
  }
  if (utc) year += year < 50 ? 2000 : 1900;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new DerError("DER_TIME", `${what}: ${kind} ${Buffer.from(buf.buffer, buf.byteOffset + p, len).toString("latin1")} is out of range`, tlv.contentStart);
  }
  if (year >= 100) return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  return d;
}

// ---- strings -----------------------------------------------------------------------------------

function latin1(buf: Uint8Array, start: number, end: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString("latin1");
}

/**
 * A directory string as text, for display: UTF8String, PrintableString, IA5String, T61String
 * (as Latin-1), NumericString, VisibleString, BMPString, UniversalString. Other types, and
 * malformed BMP / Universal strings, render as '#' + hex of the whole element (RFC 4514 style).
 * Never throws on content.
 */
export function readDisplayString(buf: Uint8Array, tlv: Tlv): string {
  const s = tlv.contentStart;
  const e = tlv.contentEnd;
  switch (tlv.tag) {
    case Tag.UTF8_STRING:
      return Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString("utf8");
    case Tag.PRINTABLE_STRING:
    case Tag.IA5_STRING:
    case Tag.T61_STRING:
    case Tag.NUMERIC_STRING:
    case Tag.VISIBLE_STRING:
      return latin1(buf, s, e);
    case Tag.BMP_STRING:
      if ((e - s) % 2 === 0) {
        let out = "";
        for (let i = s; i < e; i += 2) out += String.fromCharCode((buf[i]! << 8) | buf[i + 1]!);
        return out;
      }
      break;
    case Tag.UNIVERSAL_STRING:
      if ((e - s) % 4 === 0) {
        let out = "";
        let ok = true;
        for (let i = s; i < e; i += 4) {
          const cp = buf[i]! * 0x1000000 + ((buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!);
          if (cp > 0x10ffff) {
            ok = false;
            break;
          }
          out += String.fromCodePoint(cp);
        }
        if (ok) return out;
      }
      break;
  }
  return "#" + Buffer.from(buf.buffer, buf.byteOffset + tlv.start, tlv.end - tlv.start).toString("hex");
}
