/**
 * PEM block extraction. Pure; no I/O.
 *
 * Blocks may sit anywhere in the input, between arbitrary text, whitespace, CRLF line ends or NUL
 * bytes: the PCK chain in SGX certification data (type 5) is usually NUL-terminated, so we find
 * the boundaries rather than assume them. Inside a block only base64 and whitespace are allowed
 * (no RFC 1421 headers), padding must be canonical, and each BEGIN must be closed by the END with
 * the same label before anything else starts. Errors: DerError code PEM_INVALID.
 */
import { DerError } from "../../core/errors.js";

const BEGIN = "-----BEGIN ";
const END = "-----END ";
const DASHES = "-----";
const MAX_LABEL = 64;

/** base64 alphabet value, -1 invalid, -2 whitespace, -3 '='. */
const B64 = new Int8Array(256).fill(-1);
{
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) B64[alphabet.charCodeAt(i)] = i;
  for (const c of " \t\r\n") B64[c.charCodeAt(0)] = -2;
  B64["=".charCodeAt(0)] = -3;
}

function toText(input: string | Uint8Array): string {
  if (typeof input === "string") return input;
  return Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("latin1");
}

/** Strict base64 of text[start, end) (whitespace ignored). */
function decodeBase64(text: string, start: number, end: number, label: string): Uint8Array {
  // Validate strictly first; Node's decoder silently skips what it does not understand.
  let n = 0;
  let pad = 0;
  let lastValue = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 256 ? B64[c]! : -1;
    if (v >= 0) {
      if (pad > 0) throw new DerError("PEM_INVALID", `PEM ${label}: base64 data after padding`, i);
      n++;
      lastValue = v;
    } else if (v === -3) {
      pad++;
    } else if (v === -1) {
      throw new DerError("PEM_INVALID", `PEM ${label}: invalid character 0x${c.toString(16).padStart(2, "0")} in base64 body`, i);
    }
  }
  if (pad > 2 || (n + pad) % 4 !== 0) {
    throw new DerError("PEM_INVALID", `PEM ${label}: base64 body is not a whole number of quanta (${n} characters, ${pad} padding)`, start);
  }
  if (n === 0) throw new DerError("PEM_INVALID", `PEM ${label}: empty body`, start);
  // Canonical encoding: the bits of the last character below the last whole octet must be zero
  // (one '=' leaves 2 such bits, two leave 4).
  if (pad > 0 && (lastValue & (pad === 1 ? 0x03 : 0x0f)) !== 0) {
    throw new DerError("PEM_INVALID", `PEM ${label}: non-canonical base64 (non-zero padding bits)`, end);
  }
  // Validated above, so Node's (lenient, native) decoder sees only canonical base64 and whitespace.
  const buf = Buffer.from(text.slice(start, end), "base64");
  const want = ((n + pad) / 4) * 3 - pad;
  if (buf.length !== want) throw new DerError("PEM_INVALID", `PEM ${label}: base64 decoded to ${buf.length} bytes, expected ${want}`, start);
  // A copy of our own: small Buffers are slices of a shared pool.
  return new Uint8Array(buf);
}

/** Read "<label>-----" at `p`; returns the label and the offset just past the dashes. */
function readLabel(text: string, p: number, kind: string): { label: string; next: number } {
  const close = text.indexOf(DASHES, p);
  if (close < 0 || close - p > MAX_LABEL) throw new DerError("PEM_INVALID", `PEM ${kind} line is not terminated by "-----"`, p);
  const label = text.slice(p, close);
  if (!/^[\x21-\x2c\x2e-\x7e]+(?: [\x21-\x2c\x2e-\x7e]+)*$/.test(label)) {
    throw new DerError("PEM_INVALID", `PEM ${kind} line has an invalid label ${JSON.stringify(label)}`, p);
  }
  return { label, next: close + DASHES.length };
}

/**
 * DER bytes of every `-----BEGIN <label>-----` … `-----END <label>-----` block in `input`, in
 * order. Blocks with another label are skipped (but must still be well-formed). No block: [].
 */
export function pemBlocks(input: string | Uint8Array, label = "CERTIFICATE"): Uint8Array[] {
  const text = toText(input);
  const out: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    const b = text.indexOf(BEGIN, pos);
    const strayEnd = text.indexOf(END, pos);
    if (strayEnd >= 0 && (b < 0 || strayEnd < b)) {
      throw new DerError("PEM_INVALID", "PEM END line without a matching BEGIN line", strayEnd);
    }
    if (b < 0) break;
    const begin = readLabel(text, b + BEGIN.length, "BEGIN");
    // The body runs to the next "-----", which must be the matching END line.
    const e = text.indexOf(DASHES, begin.next);
    if (e < 0 || !text.startsWith(END, e)) {
      throw new DerError("PEM_INVALID", `PEM block "${begin.label}" has no END line`, b);
    }
    const end = readLabel(text, e + END.length, "END");
    if (end.label !== begin.label) {
      throw new DerError("PEM_INVALID", `PEM BEGIN "${begin.label}" is closed by END "${end.label}"`, e);
    }
    if (begin.label === label) out.push(decodeBase64(text, begin.next, e, label));
    pos = end.next;
  }
  return out;
}
