/** Directory strings rendered for display (names in messages); never throws on content. */
import { Tag, type Tlv } from "./der-reader.js";

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
