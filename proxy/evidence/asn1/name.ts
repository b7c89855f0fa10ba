/** X.509 Names: their structure checked, and rendered as "CN=…,O=…" for messages. */
import { toHex } from "../../core/bytes.js";
import { DerError, type DerCode } from "../../core/errors.js";
import { DerSeq, Tag, children, encodingOf, readDisplayString, readOid, type Tlv } from "./der.js";

const NAME_ATTRS: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.4": "SN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "street",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.12": "title",
  "2.5.4.42": "GN",
  "0.9.2342.19200300.100.1.1": "UID",
  "0.9.2342.19200300.100.1.25": "DC",
  "1.2.840.113549.1.9.1": "emailAddress",
};

const DN_SPECIAL = /[\\,+"<>;=\x00-\x1f\x7f]|^[# ]| $/;

function escapeDn(v: string): string {
  // RFC 4514-ish, good enough to keep messages unambiguous.
  if (!DN_SPECIAL.test(v)) return v;
  let s = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  if (s.startsWith("#") || s.startsWith(" ")) s = `\\${s}`;
  if (s.endsWith(" ") && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** Validate a Name: SEQUENCE OF SET SIZE (1..MAX) OF SEQUENCE { type OID, value ANY }. */
export function checkName(buf: Uint8Array, tlv: Tlv, path: string, code: DerCode): void {
  const names = new DerSeq(buf, tlv, path, code);
  while (!names.done) {
    const rdnTlv = names.next(Tag.SET, "rdn");
    const rdn = new DerSeq(buf, rdnTlv, path, code, "rdn");
    if (rdn.done) throw new DerError(code, `${path}.rdn: empty RelativeDistinguishedName`, rdnTlv.start);
    while (!rdn.done) {
      const ava = new DerSeq(buf, rdn.next(Tag.SEQUENCE, "attribute"), path, code, "rdn.attribute");
      const type = ava.next(Tag.OID, "type");
      readOid(buf, type, path); // validates the encoding
      ava.any("value");
      ava.finish();
    }
  }
}

/** Render a Name checked by checkName as "CN=…,O=…" (DER order). Never throws. */
export function nameText(buf: Uint8Array, tlv: Tlv): string {
  try {
    const rdns: string[] = [];
    for (const rdn of children(buf, tlv)) {
      const avas: string[] = [];
      for (const ava of children(buf, rdn)) {
        const [type, value] = children(buf, ava);
        if (type === undefined || value === undefined) continue;
        const oid = readOid(buf, type);
        avas.push(`${NAME_ATTRS[oid] ?? oid}=${escapeDn(readDisplayString(buf, value))}`);
      }
      rdns.push(avas.join("+"));
    }
    return rdns.join(",");
  } catch {
    return `#${toHex(encodingOf(buf, tlv))}`;
  }
}
