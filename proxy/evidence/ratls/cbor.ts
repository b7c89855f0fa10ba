/**
 * A small strict CBOR (RFC 8949) codec for RA-TLS evidence: the TCG DICE tagged-evidence
 * extension and its claims map. The decoder refuses what evidence never needs and what makes
 * bytes ambiguous: indefinite lengths, trailing bytes, duplicate map keys, floats, reserved
 * additional-information values, lengths past the end, nesting beyond a bound.
 */
import { CborError, type CborCode } from "../../core/errors.js";

export interface CborTag {
  tag: number;
  value: CborValue;
}

export type CborValue = number | bigint | Uint8Array | string | CborValue[] | Map<CborValue, CborValue> | CborTag | boolean | null | undefined;

const MAX_DEPTH = 16;

class Decoder {
  pos = 0;
  constructor(readonly b: Uint8Array) {}

  fail(code: CborCode, msg: string, at = this.pos): never {
    throw new CborError(code, `CBOR: ${msg}`, at);
  }

  /** The argument of the head at `pos` (after its initial byte). */
  arg(info: number, at: number): number | bigint {
    if (info < 24) return info;
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (n === 0) this.fail(info === 31 ? "CBOR_INDEFINITE" : "CBOR_RESERVED", info === 31 ? "indefinite length is not allowed" : `reserved additional information ${info}`, at);
    if (this.pos + n > this.b.length) this.fail("CBOR_TRUNCATED", `head needs ${n} more bytes`, at);
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(this.b[this.pos + i]!);
    this.pos += n;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  length(info: number, at: number, what: string): number {
    const n = this.arg(info, at);
    if (typeof n === "bigint" || n > this.b.length - this.pos) this.fail("CBOR_TRUNCATED", `${what} of length ${n} runs past the end`, at);
    return n;
  }

  count(info: number, at: number, what: string, minBytesEach: number): number {
    const n = this.arg(info, at);
    // Every item takes at least one byte: a count above what is left cannot be honest.
    if (typeof n === "bigint" || n * minBytesEach > this.b.length - this.pos) this.fail("CBOR_TRUNCATED", `${what} of ${n} items runs past the end`, at);
    return n;
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) this.fail("CBOR_DEPTH", `nesting deeper than ${MAX_DEPTH}`);
    const at = this.pos;
    if (at >= this.b.length) this.fail("CBOR_TRUNCATED", "expected an item, found the end");
    const ib = this.b[this.pos++]!;
    const major = ib >> 5;
    const info = ib & 0x1f;
    switch (major) {
      case 0:
        return this.arg(info, at);
      case 1: {
        const n = this.arg(info, at);
        return typeof n === "bigint" ? -1n - n : -1 - n;
      }
      case 2: {
        const n = this.length(info, at, "byte string");
        const v = this.b.subarray(this.pos, this.pos + n);
        this.pos += n;
        return v;
      }
      case 3: {
        const n = this.length(info, at, "text string");
        const bytes = this.b.subarray(this.pos, this.pos + n);
        this.pos += n;
        try {
          return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          return this.fail("CBOR_UTF8", "text string is not valid UTF-8", at);
        }
      }
      case 4: {
        const n = this.count(info, at, "array", 1);
        const out: CborValue[] = [];
        for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 5: {
        const n = this.count(info, at, "map", 2);
        const out = new Map<CborValue, CborValue>();
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) {
          const kAt = this.pos;
          const k = this.item(depth + 1);
          const id = keyId(k);
          if (id === null) this.fail("CBOR_MAP_KEY", "map keys must be integers, text or byte strings", kAt);
          if (seen.has(id)) this.fail("CBOR_DUPLICATE_KEY", `duplicate map key ${id}`, kAt);
          seen.add(id);
          out.set(k, this.item(depth + 1));
        }
        return out;
      }
      case 6: {
        const tag = this.arg(info, at);
        if (typeof tag === "bigint") this.fail("CBOR_TAG", "tag number too large", at);
        return { tag, value: this.item(depth + 1) };
      }
      default:
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        if (info === 23) return undefined;
        return this.fail("CBOR_UNSUPPORTED", info >= 25 && info <= 27 ? "floating-point values are not accepted" : `simple value ${info} is not accepted`, at);
    }
  }
}

function keyId(k: CborValue): string | null {
  if (typeof k === "number" || typeof k === "bigint") return `i:${k}`;
  if (typeof k === "string") return `t:${JSON.stringify(k)}`;
  if (k instanceof Uint8Array) return `b:${Buffer.from(k).toString("hex")}`;
  return null;
}

/** Decode exactly one item that spans all of `bytes`. */
export function decodeCbor(bytes: Uint8Array): CborValue {
  const d = new Decoder(bytes);
  const v = d.item(0);
  if (d.pos !== bytes.length) d.fail("CBOR_TRAILING", `${bytes.length - d.pos} bytes after the item`);
  return v;
}

// ---- encoding (deterministic: shortest heads, map keys in the order given) ------------------

function head(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  if (n < 0x100000000) return Uint8Array.of(m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  throw new RangeError("CBOR: lengths above 2^32 are not encoded here");
}

export function encodeCbor(v: CborValue): Uint8Array {
  const parts: Uint8Array[] = [];
  const put = (x: CborValue): void => {
    if (typeof x === "number") {
      if (!Number.isSafeInteger(x)) throw new RangeError("CBOR: only safe integers are encoded");
      parts.push(x >= 0 ? head(0, x) : head(1, -1 - x));
    } else if (x instanceof Uint8Array) {
      parts.push(head(2, x.length), x);
    } else if (typeof x === "string") {
      const b = new TextEncoder().encode(x);
      parts.push(head(3, b.length), b);
    } else if (Array.isArray(x)) {
      parts.push(head(4, x.length));
      x.forEach(put);
    } else if (x instanceof Map) {
      parts.push(head(5, x.size));
      for (const [k, val] of x) {
        put(k);
        put(val);
      }
    } else if (x === false || x === true || x === null || x === undefined) {
      parts.push(Uint8Array.of(0xe0 | (x === false ? 20 : x === true ? 21 : x === null ? 22 : 23)));
    } else if (typeof x === "object" && "tag" in x) {
      parts.push(head(6, x.tag));
      put(x.value);
    } else {
      throw new RangeError(`CBOR: cannot encode ${typeof x}`);
    }
  };
  put(v);
  return Uint8Array.from(Buffer.concat(parts));
}
