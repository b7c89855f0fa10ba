/** Certificate and CRL extensions: the list read strictly, and the X.509 extensions this reader decodes. */
import { DerError, type DerCode } from "../../core/errors.js";
import { DerSeq, Tag, contentOf, encodingOf, readBitString, readBoolean, readExactTlv, readOctetString, readOid, readSmallUnsigned, readUnsigned, type Tlv } from "./der.js";

export interface Extension {
  /** Dotted form of the OID (whatever its content bytes decode to; see oidBytes). */
  oid: string;
  /** The raw OBJECT IDENTIFIER element, tag and length included (e.g. 06 03 55 1D 13). */
  oidBytes: Uint8Array;
  critical: boolean;
  /** Content of the extnValue OCTET STRING. */
  value: Uint8Array;
}

export interface KeyUsage {
  digitalSignature: boolean;
  nonRepudiation: boolean;
  keyEncipherment: boolean;
  dataEncipherment: boolean;
  keyAgreement: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
  encipherOnly: boolean;
  decipherOnly: boolean;
}

export interface BasicConstraints {
  ca: boolean;
  pathLen?: number;
}

export function parseExtensions(buf: Uint8Array, seq: Tlv, path: string, code: DerCode): Extension[] {
  const out: Extension[] = [];
  const seen = new Set<string>();
  const r = new DerSeq(buf, seq, path, code);
  while (!r.done) {
    const e = new DerSeq(buf, r.next(Tag.SEQUENCE, "extension"), path, code, "extension");
    const oidTlv = e.next(Tag.OID, "extnID");
    const oid = readOid(buf, oidTlv, path);
    const critTlv = e.optional(Tag.BOOLEAN, "critical");
    const critical = critTlv === null ? false : readBoolean(buf, critTlv, path);
    const valueTlv = e.next(Tag.OCTET_STRING, "extnValue");
    e.finish();
    // Strict base-128 decoding is one-to-one, so the dotted string identifies the raw bytes.
    if (seen.has(oid)) throw new DerError(code, `${path}: extension ${oid} appears twice`, oidTlv.start);
    seen.add(oid);
    out.push({ oid, oidBytes: encodingOf(buf, oidTlv), critical, value: readOctetString(buf, valueTlv, path) });
  }
  return out;
}

/** The single element an extension value holds, located in the parent buffer (for offsets). */
export function extensionValue(buf: Uint8Array, ext: Extension, path: string): Tlv {
  const start = ext.value.byteOffset - buf.byteOffset;
  return readExactTlv(buf, start, start + ext.value.length, path);
}

export function basicConstraintsOf(buf: Uint8Array, ext: Extension, path: string, code: DerCode): BasicConstraints {
  const t = extensionValue(buf, ext, path);
  if (t.tag !== Tag.SEQUENCE) throw new DerError(code, `${path}: expected SEQUENCE`, t.start);
  const r = new DerSeq(buf, t, path, code);
  const caTlv = r.optional(Tag.BOOLEAN, "cA");
  const ca = caTlv === null ? false : readBoolean(buf, caTlv, `${path}.cA`);
  const plTlv = r.optional(Tag.INTEGER, "pathLenConstraint");
  r.finish();
  if (plTlv === null) return { ca };
  return { ca, pathLen: readSmallUnsigned(buf, plTlv, `${path}.pathLenConstraint`, 0x7fffffff) };
}

export function keyUsageOf(buf: Uint8Array, ext: Extension, path: string, code: DerCode): KeyUsage {
  const t = extensionValue(buf, ext, path);
  if (t.tag !== Tag.BIT_STRING) throw new DerError(code, `${path}: expected BIT STRING`, t.start);
  const { bytes } = readBitString(buf, t, path);
  const bit = (n: number): boolean => ((bytes[n >> 3] ?? 0) & (0x80 >> (n & 7))) !== 0;
  return {
    digitalSignature: bit(0),
    nonRepudiation: bit(1),
    keyEncipherment: bit(2),
    dataEncipherment: bit(3),
    keyAgreement: bit(4),
    keyCertSign: bit(5),
    cRLSign: bit(6),
    encipherOnly: bit(7),
    decipherOnly: bit(8),
  };
}

export function subjectKeyIdOf(buf: Uint8Array, ext: Extension, path: string, code: DerCode): Uint8Array {
  const t = extensionValue(buf, ext, path);
  if (t.tag !== Tag.OCTET_STRING) throw new DerError(code, `${path}: expected OCTET STRING`, t.start);
  return contentOf(buf, t);
}

/** AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier, [1] authorityCertIssuer, [2] serial } */
export function authorityKeyIdOf(buf: Uint8Array, ext: Extension, path: string, code: DerCode): Uint8Array | null {
  const t = extensionValue(buf, ext, path);
  if (t.tag !== Tag.SEQUENCE) throw new DerError(code, `${path}: expected SEQUENCE`, t.start);
  const r = new DerSeq(buf, t, path, code);
  const kid = r.optional(0x80, "keyIdentifier");
  r.optional(0xa1, "authorityCertIssuer");
  const serial = r.optional(0x82, "authorityCertSerialNumber");
  if (serial !== null) readUnsigned(buf, serial, `${path}.authorityCertSerialNumber`, 0x82);
  r.finish();
  return kid === null ? null : contentOf(buf, kid);
}
