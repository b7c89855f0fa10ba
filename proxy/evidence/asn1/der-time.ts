/** DER times as RFC 5280 requires them: UTCTime and GeneralizedTime, seconds present, 'Z', no fraction. */
import { DerError } from "../../core/errors.js";
import { Tag, tagName, type Tlv } from "./der-reader.js";

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
