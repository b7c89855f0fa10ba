/**
 * The DER reader: one element at a time (identifier, length, content) within the bounds its
 * caller gives, and a sequential reader for fixed schemas. Values of the universal types are
 * decoded by der-primitives.ts, der-time.ts and der-strings.ts; der.ts is the entry for all of them.
 */
import { DerError, type DerCode } from "../../core/errors.js";

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

/** An identifier octet as messages show it, e.g. 0x30. */
export function tagName(tag: number): string {
  return `0x${tag.toString(16).padStart(2, "0")}`;
}

/**
 * Read one TLV starting at `offset`; it must end at or before `end`.
 * `what` (and `field`, appended as `what.field`) names the element in error messages.
 */
export function readTlv(buf: Uint8Array, offset: number, end: number = buf.length, depth = 0, what = "DER", field?: string): Tlv {
  // Messages are composed only on failure: this runs for every element on hot paths.
  if (offset >= 0 && end <= buf.length && offset + 1 < end && Number.isInteger(offset) && Number.isInteger(end) && depth <= MAX_DEPTH) {
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
    throw new DerError(end === buf.length ? "DER_TRUNCATED" : "DER_LENGTH", `${what}: length ${len} runs past the end of ${outOf} (${end - p} bytes left)`, offset);
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
export function expectTag(tlv: Tlv, tag: number, what: string, code: DerCode = "DER_TAG"): void {
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
    readonly code: DerCode = "DER_TAG",
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
