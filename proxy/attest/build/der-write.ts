/**
 * A minimal DER encoder: the writing counterpart of der.ts. Pure; no I/O. Every function returns
 * a complete element (identifier, minimal length, content) as a fresh Uint8Array, except
 * `concat`. Inputs that cannot be encoded as valid DER are refused with InputError code
 * DER_ENCODE (they are caller bugs, not data errors).
 */
import { InputError } from "../../core/errors.js";
import { concatBytes } from "../../core/bytes.js";

function fail(message: string): never {
  throw new InputError("DER_ENCODE", message);
}

/** The concatenation of `parts`, as one fresh Uint8Array. */
export const concat = concatBytes;

/** Length octets in the minimal (definite) form. */
function lengthOctets(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  if (bytes.length > 4) fail(`element of ${n} bytes is too long to encode`);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/**
 * One element: identifier octet `tag` (class, constructed bit and number < 31, as der.ts reads
 * it), then the minimal length of, and, the concatenated `contents`.
 */
export function tlv(tag: number, ...contents: readonly Uint8Array[]): Uint8Array {
  if (!Number.isInteger(tag) || tag <= 0 || tag > 0xff || (tag & 0x1f) === 0x1f) {
    fail(`identifier octet ${String(tag)} is not a low-tag-number tag`);
  }
  const content = concat(...contents);
  const len = lengthOctets(content.length);
  const out = new Uint8Array(1 + len.length + content.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

export function seq(...contents: readonly Uint8Array[]): Uint8Array {
  return tlv(0x30, ...contents);
}

/**
 * SET. DER orders SET OF elements by their encodings; the elements are sorted here, so a SET OF
 * may be passed in any order. (Pass one element for an RDN.)
 */
export function set(...contents: readonly Uint8Array[]): Uint8Array {
  const sorted = [...contents].sort(compareBytes);
  return tlv(0x31, ...sorted);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Base-128 sub-identifier. */
function base128(v: bigint): number[] {
  const out = [Number(v & 0x7fn)];
  for (v >>= 7n; v > 0n; v >>= 7n) out.unshift(Number(v & 0x7fn) | 0x80);
  return out;
}

/** OBJECT IDENTIFIER from its dotted-decimal form ("1.2.840.10045.2.1"), as a full element. */
export function oid(dotted: string): Uint8Array {
  const parts = dotted.split(".");
  if (parts.length < 2 || parts.some((p) => !/^(0|[1-9][0-9]*)$/.test(p))) fail(`"${dotted}" is not a dotted-decimal OID`);
  const arcs = parts.map((p) => BigInt(p));
  const [a, b] = arcs as [bigint, bigint];
  if (a > 2n || (a < 2n && b >= 40n)) fail(`"${dotted}": first arcs ${a}.${b} are out of range`);
  const bytes = base128(a * 40n + b);
  for (const arc of arcs.slice(2)) bytes.push(...base128(arc));
  return tlv(0x06, Uint8Array.from(bytes));
}

/** Minimal two's-complement content octets of an integer. */
function integerContent(v: bigint | number | Uint8Array, what: string): Uint8Array {
  if (v instanceof Uint8Array) {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    const mag = v.length === 0 ? Uint8Array.of(0) : v.subarray(i);
    return (mag[0]! & 0x80) !== 0 ? concat(Uint8Array.of(0), mag) : Uint8Array.from(mag);
  }
  let n: bigint;
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) fail(`${what}: ${v} is not a safe integer`);
    n = BigInt(v);
  } else if (typeof v === "bigint") {
    n = v;
  } else {
    fail(`${what}: expected bigint, number or Uint8Array`);
  }
  if (n >= 0n) {
    let hex = n.toString(16);
    if (hex.length % 2 === 1) hex = `0${hex}`;
    if (parseInt(hex[0]!, 16) >= 8) hex = `00${hex}`;
    return Uint8Array.from(Buffer.from(hex, "hex"));
  }
  // Negative: the smallest byte count whose range reaches n, then 2^(8k) + n.
  let k = 1;
  while (n < -(1n << BigInt(8 * k - 1))) k++;
  const hex = ((1n << BigInt(8 * k)) + n).toString(16).padStart(2 * k, "0");
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

/**
 * INTEGER. A bigint or (safe-integer) number may be negative; a Uint8Array is an unsigned
 * big-endian magnitude: redundant leading zero octets are stripped, a 0x00 is prepended when the
 * high bit is set, and an empty array is zero.
 */
export function int(v: bigint | number | Uint8Array): Uint8Array {
  return tlv(0x02, integerContent(v, "INTEGER"));
}

/** ENUMERATED (same content rules as `int`). */
export function enumerated(v: bigint | number | Uint8Array): Uint8Array {
  return tlv(0x0a, integerContent(v, "ENUMERATED"));
}

/** BOOLEAN, in the DER form (0xff for true). */
export function bool(v: boolean): Uint8Array {
  return Uint8Array.of(0x01, 0x01, v ? 0xff : 0x00);
}

export function nullValue(): Uint8Array {
  return Uint8Array.of(0x05, 0x00);
}

export function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(0x04, bytes);
}

/**
 * BIT STRING of `bytes` whose last `unusedBits` (0..7) bits are not part of the value; those
 * bits must be zero, and an empty string has none (DER).
 */
export function bitString(bytes: Uint8Array, unusedBits = 0): Uint8Array {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7) fail(`BIT STRING: unused-bits count ${unusedBits} is not 0..7`);
  if (bytes.length === 0 && unusedBits !== 0) fail("BIT STRING: an empty string has no unused bits");
  if (unusedBits !== 0 && (bytes[bytes.length - 1]! & ((1 << unusedBits) - 1)) !== 0) fail("BIT STRING: unused bits must be zero");
  return tlv(0x03, Uint8Array.of(unusedBits), bytes);
}

const LONE_SURROGATE = /\p{Surrogate}/u;

export function utf8String(s: string): Uint8Array {
  if (LONE_SURROGATE.test(s)) fail("UTF8String: string has a lone surrogate");
  return tlv(0x0c, new Uint8Array(Buffer.from(s, "utf8")));
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function printableString(s: string): Uint8Array {
  if (!PRINTABLE.test(s)) fail(`PrintableString: ${JSON.stringify(s)} has a character outside the PrintableString set`);
  return tlv(0x13, new Uint8Array(Buffer.from(s, "latin1")));
}

export function ia5String(s: string): Uint8Array {
  if (!/^[\x00-\x7f]*$/.test(s)) fail(`IA5String: ${JSON.stringify(s)} is not ASCII`);
  return tlv(0x16, new Uint8Array(Buffer.from(s, "latin1")));
}

function checkDate(d: Date, what: string): void {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) fail(`${what}: not a valid Date`);
}

const two = (n: number): string => String(n).padStart(2, "0");

/** hhmmss'Z' part; milliseconds are dropped (DER times here carry whole seconds). */
function timeOfDay(d: Date): string {
  return `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
}

/** UTCTime YYMMDDHHMMSSZ, for years 1950..2049 only. Milliseconds are dropped. */
export function utcTime(d: Date): Uint8Array {
  checkDate(d, "UTCTime");
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 2049) fail(`UTCTime: year ${y} is outside 1950..2049`);
  return tlv(0x17, new Uint8Array(Buffer.from(`${two(y % 100)}${timeOfDay(d)}`, "latin1")));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ (no fraction), for years 0..9999. Milliseconds are dropped. */
export function generalizedTime(d: Date): Uint8Array {
  checkDate(d, "GeneralizedTime");
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) fail(`GeneralizedTime: year ${y} is outside 0..9999`);
  return tlv(0x18, new Uint8Array(Buffer.from(`${String(y).padStart(4, "0")}${timeOfDay(d)}`, "latin1")));
}

/** RFC 5280 Time: UTCTime for 1950..2049, GeneralizedTime otherwise. */
export function time(d: Date): Uint8Array {
  checkDate(d, "Time");
  const y = d.getUTCFullYear();
  return y >= 1950 && y <= 2049 ? utcTime(d) : generalizedTime(d);
}

/** [n] EXPLICIT: a constructed context-specific element (0xa0 | n) holding `contents`. */
export function explicit(n: number, ...contents: readonly Uint8Array[]): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 30) fail(`context tag [${n}] is not 0..30`);
  return tlv(0xa0 | n, ...contents);
}
