/**
 * X.509 certificates and CRLs (RFC 5280), parsed from DER with der.ts. Pure; no I/O; byte fields
 * are subarrays of the input (no copies). Only the structure is checked here: signatures, validity
 * windows, chains and critical-extension policy are the callers' business.
 *
 * Errors are DerError: encoding problems keep their DER_* codes; a well-formed encoding that is
 * not the expected structure is X509_STRUCTURE (certificates) or CRL_STRUCTURE (CRLs); an outer
 * signature algorithm that differs from the signed one is X509_SIGALG_MISMATCH; an EC key we
 * cannot represent is X509_KEY_UNSUPPORTED.
 */
import { toHex } from "../../core/bytes.js";
import {
  DerSeq,
  Tag,
  children,
  contentOf,
  encodingOf,
  readBitString,
  readBitStringBytes,
  readBoolean,
  readDisplayString,
  readExactTlv,
  readOctetString,
  readOid,
  readSmallUnsigned,
  readTime,
  readTlv,
  readUnsigned,
  type Tlv,
} from "./der.js";
import { DerError } from "../../core/errors.js";

export const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecdsaWithSha512: "1.2.840.10045.4.3.4",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
  crlNumber: "2.5.29.20",
} as const;

export interface Extension {
  /** Dotted form of the OID (whatever its content bytes decode to; see oidBytes). */
  oid: string;
  /** The raw OBJECT IDENTIFIER element, tag and length included (e.g. 06 03 55 1D 13). */
  oidBytes: Uint8Array;
  critical: boolean;
  /** Content of the extnValue OCTET STRING. */
  value: Uint8Array;
}

export type PublicKey =
  | { algorithm: "EC"; curve: "P-256" | "P-384" | "P-521" | string; point: Uint8Array /* 0x04 ‖ x ‖ y for the named curves */ }
  | { algorithm: "RSA" | "RSA-PSS" | "DSA" | "Ed25519" | "Ed448" | "other"; oid: string };

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

export interface Certificate {
  /** The whole certificate (exactly the input). */
  der: Uint8Array;
  /** The tbsCertificate element, byte-exact: what the signature covers. */
  tbs: Uint8Array;
  /** 1, 2 or 3. */
  version: number;
  /** Unsigned magnitude of the serial number. */
  serial: Uint8Array;
  /** Lower-case hex of `serial` (zero is "00"). */
  serialHex: string;
  /** OID of the signature algorithm (outer, equal to the signed inner one). */
  signatureAlgorithm: string;
  /** The signatureValue BIT STRING content (for ECDSA, a DER Ecdsa-Sig-Value). */
  signature: Uint8Array;
  /** Raw DER of the issuer / subject Name, for byte comparison. */
  issuer: Uint8Array;
  subject: Uint8Array;
  /** Readable "CN=…,O=…" renderings (DER order), for messages only. */
  issuerText: string;
  subjectText: string;
  notBefore: Date;
  notAfter: Date;
  /** Raw SubjectPublicKeyInfo element. */
  spki: Uint8Array;
  publicKey: PublicKey;
  extensions: Extension[];
  basicConstraints: BasicConstraints | null;
  keyUsage: KeyUsage | null;
  subjectKeyId: Uint8Array | null;
  authorityKeyId: Uint8Array | null;
}

export interface Crl {
  der: Uint8Array;
  tbs: Uint8Array;
  /** 1 or 2. */
  version: number;
  signatureAlgorithm: string;
  signature: Uint8Array;
  issuer: Uint8Array;
  issuerText: string;
  thisUpdate: Date;
  nextUpdate: Date | null;
  /** serialHex (as in Certificate.serialHex) → revocation date. */
  revoked: Map<string, Date>;
  extensions: Extension[];
  /** CRL number extension (unsigned magnitude), when present. */
  crlNumber: Uint8Array | null;
  authorityKeyId: Uint8Array | null;
}

// ---- shared pieces -------------------------------------------------------------------------------

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, "0"));

/** Lower-case hex; faster than Buffer for the short serials we key maps with. */
function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!]!;
  return s;
}

const CURVES: Record<string, string> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
};
const CURVE_FIELD_BYTES: Record<string, number> = { "P-256": 32, "P-384": 48, "P-521": 66 };

const KEY_ALGORITHMS: Record<string, "RSA" | "RSA-PSS" | "DSA" | "Ed25519" | "Ed448"> = {
  "1.2.840.113549.1.1.1": "RSA",
  "1.2.840.113549.1.1.10": "RSA-PSS",
  "1.2.840.10040.4.1": "DSA",
  "1.3.101.112": "Ed25519",
  "1.3.101.113": "Ed448",
};

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

interface AlgorithmId {
  oid: string;
  /** Parameters element, or null when absent. */
  params: Tlv | null;
}

function algorithmIdentifier(buf: Uint8Array, tlv: Tlv, path: string, code: string): AlgorithmId {
  const r = new DerSeq(buf, tlv, path, code);
  const oid = readOid(buf, r.next(Tag.OID, "algorithm"), `${path}.algorithm`);
  const params = r.done ? null : r.any("parameters");
  r.finish();
  return { oid, params };
}

/** Signature AlgorithmIdentifier: for ECDSA, parameters must be absent or NULL (Gramine writes NULL). */
function signatureAlgorithm(buf: Uint8Array, tlv: Tlv, path: string, code: string): AlgorithmId {
  const a = algorithmIdentifier(buf, tlv, path, code);
  const isNull = a.params !== null && a.params.tag === Tag.NULL && a.params.contentEnd === a.params.contentStart;
  if (isNull) return { oid: a.oid, params: null };
  if (a.params !== null && a.oid.startsWith("1.2.840.10045.4.")) {
    throw new DerError(code, `${path}.parameters: ECDSA signature algorithm ${a.oid} must have absent or NULL parameters`, a.params.start);
  }
  return a;
}

function sameAlgorithm(buf: Uint8Array, a: AlgorithmId, b: AlgorithmId): boolean {
  if (a.oid !== b.oid) return false;
  if (a.params === null || b.params === null) return a.params === b.params;
  const pa = encodingOf(buf, a.params);
  const pb = encodingOf(buf, b.params);
  if (pa.length !== pb.length) return false;
  for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) return false;
  return true;
}

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
function checkName(buf: Uint8Array, tlv: Tlv, path: string, code: string): void {
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
function nameText(buf: Uint8Array, tlv: Tlv): string {
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

function parseExtensions(buf: Uint8Array, seq: Tlv, path: string, code: string): Extension[] {
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
function extensionValue(buf: Uint8Array, ext: Extension, path: string): Tlv {
  const start = ext.value.byteOffset - buf.byteOffset;
  return readExactTlv(buf, start, start + ext.value.length, path);
}

function basicConstraintsOf(buf: Uint8Array, ext: Extension, path: string, code: string): BasicConstraints {
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

function keyUsageOf(buf: Uint8Array, ext: Extension, path: string, code: string): KeyUsage {
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

function subjectKeyIdOf(buf: Uint8Array, ext: Extension, path: string, code: string): Uint8Array {
  const t = extensionValue(buf, ext, path);
  if (t.tag !== Tag.OCTET_STRING) throw new DerError(code, `${path}: expected OCTET STRING`, t.start);
  return contentOf(buf, t);
}

/** AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier, [1] authorityCertIssuer, [2] serial } */
function authorityKeyIdOf(buf: Uint8Array, ext: Extension, path: string, code: string): Uint8Array | null {
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

function publicKeyOf(buf: Uint8Array, spki: Tlv, path: string, code: string): PublicKey {
  const r = new DerSeq(buf, spki, path, code);
  const alg = algorithmIdentifier(buf, r.next(Tag.SEQUENCE, "algorithm"), `${path}.algorithm`, code);
  const key = readBitStringBytes(buf, r.next(Tag.BIT_STRING, "subjectPublicKey"), `${path}.subjectPublicKey`);
  r.finish();
  if (alg.oid !== OID.ecPublicKey) return { algorithm: KEY_ALGORITHMS[alg.oid] ?? "other", oid: alg.oid };
  if (alg.params === null) throw new DerError(code, `${path}.algorithm.parameters: EC key without curve parameters`, spki.start);
  if (alg.params.tag !== Tag.OID) {
    // Explicit curve parameters (or implicitlyCA): representable, but never usable by us.
    return { algorithm: "EC", curve: alg.params.tag === Tag.SEQUENCE ? "explicit" : "implicit", point: key };
  }
  const curveOid = readOid(buf, alg.params, `${path}.algorithm.parameters`);
  const curve = CURVES[curveOid];
  if (curve === undefined) return { algorithm: "EC", curve: curveOid, point: key };
  const n = CURVE_FIELD_BYTES[curve]!;
  if (key.length !== 1 + 2 * n || key[0] !== 0x04) {
    throw new DerError(
      "X509_KEY_UNSUPPORTED",
      `${path}.subjectPublicKey: ${curve} key must be an uncompressed ${1 + 2 * n}-byte point, found ${key.length} bytes starting 0x${(key[0] ?? 0).toString(16)}`,
      spki.start,
    );
  }
  return { algorithm: "EC", curve, point: key };
}

/** Run `f`, turning anything that is not already a DerError into one (belt and braces). */
function guard<T>(code: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DerError) throw e;
    throw new DerError(code, `${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function topLevel(der: Uint8Array, what: string, code: string): Tlv {
  if (!(der instanceof Uint8Array)) throw new DerError(code, `${what}: input is not a byte array`);
  const top = readTlv(der, 0, der.length, 0, what);
  if (top.tag !== Tag.SEQUENCE) throw new DerError(code, `${what}: expected SEQUENCE, found 0x${top.tag.toString(16)}`, 0);
  if (top.end !== der.length) throw new DerError("DER_TRAILING", `${what}: ${der.length - top.end} trailing bytes after the DER element`, top.end);
  return top;
}

// ---- the signed envelope shared by certificates and CRLs ----------------------------------------

interface SignedEnvelope {
  what: string;
  tbsName: string;
  tbsTlv: Tlv;
  outerAlgTlv: Tlv;
  sigTlv: Tlv;
}

/** SEQUENCE { tbs, signatureAlgorithm, signatureValue }, nothing more. */
function signedEnvelope(der: Uint8Array, what: string, tbsName: string, code: string): SignedEnvelope {
  const top = topLevel(der, what, code);
  const seq = new DerSeq(der, top, what, code);
  const tbsTlv = seq.next(Tag.SEQUENCE, tbsName);
  const outerAlgTlv = seq.next(Tag.SEQUENCE, "signatureAlgorithm");
  const sigTlv = seq.next(Tag.BIT_STRING, "signatureValue");
  seq.finish();
  return { what, tbsName, tbsTlv, outerAlgTlv, sigTlv };
}

/** The outer algorithm must equal the signed inner one; then the signature bytes. */
function envelopeSignature(der: Uint8Array, env: SignedEnvelope, innerAlg: AlgorithmId, code: string): { outerAlg: AlgorithmId; signature: Uint8Array } {
  const outerAlg = signatureAlgorithm(der, env.outerAlgTlv, `${env.what}.signatureAlgorithm`, code);
  if (!sameAlgorithm(der, innerAlg, outerAlg)) {
    throw new DerError(
      "X509_SIGALG_MISMATCH",
      `${env.what}.signatureAlgorithm ${outerAlg.oid} differs from ${env.tbsName}.signature ${innerAlg.oid}`,
      env.outerAlgTlv.start,
    );
  }
  return { outerAlg, signature: readBitStringBytes(der, env.sigTlv, `${env.what}.signatureValue`) };
}

// ---- certificates -----------------------------------------------------------------------------

export function parseCertificate(der: Uint8Array): Certificate {
  return guard("X509_STRUCTURE", "certificate", () => parseCertificateInner(der));
}

function parseCertificateInner(der: Uint8Array): Certificate {
  const C = "X509_STRUCTURE";
  const env = signedEnvelope(der, "certificate", "tbsCertificate", C);
  const { tbsTlv } = env;

  const P = "certificate.tbsCertificate";
  const t = new DerSeq(der, tbsTlv, P, C);
  let version = 1;
  const vTlv = t.optional(0xa0, "version");
  if (vTlv !== null) {
    const v = new DerSeq(der, vTlv, `${P}.version`, C);
    version = readSmallUnsigned(der, v.next(Tag.INTEGER, "value"), `${P}.version`, 2) + 1;
    v.finish();
  }
  const serial = readUnsigned(der, t.next(Tag.INTEGER, "serialNumber"), `${P}.serialNumber`);
  const innerAlg = signatureAlgorithm(der, t.next(Tag.SEQUENCE, "signature"), `${P}.signature`, C);
  const issuerTlv = t.next(Tag.SEQUENCE, "issuer");
  checkName(der, issuerTlv, `${P}.issuer`, C);

  const validity = new DerSeq(der, t.next(Tag.SEQUENCE, "validity"), `${P}.validity`, C);
  const notBefore = readTime(der, validity.any("notBefore"), `${P}.validity.notBefore`);
  const notAfter = readTime(der, validity.any("notAfter"), `${P}.validity.notAfter`);
  validity.finish();

  const subjectTlv = t.next(Tag.SEQUENCE, "subject");
  checkName(der, subjectTlv, `${P}.subject`, C);
  const spkiTlv = t.next(Tag.SEQUENCE, "subjectPublicKeyInfo");
  const publicKey = publicKeyOf(der, spkiTlv, `${P}.subjectPublicKeyInfo`, C);

  for (const [tag, name] of [[0x81, "issuerUniqueID"], [0x82, "subjectUniqueID"]] as const) {
    const u = t.optional(tag, name);
    if (u === null) continue;
    if (version < 2) throw new DerError(C, `${P}.${name}: not allowed in a v${version} certificate`, u.start);
    readBitString(der, u, `${P}.${name}`, tag);
  }

  let extensions: Extension[] = [];
  const extTlv = t.optional(0xa3, "extensions");
  if (extTlv !== null) {
    if (version !== 3) throw new DerError(C, `${P}.extensions: not allowed in a v${version} certificate`, extTlv.start);
    const wrap = new DerSeq(der, extTlv, `${P}.extensions`, C);
    extensions = parseExtensions(der, wrap.next(Tag.SEQUENCE, "list"), `${P}.extensions`, C);
    wrap.finish();
  }
  t.finish();

  const { outerAlg, signature } = envelopeSignature(der, env, innerAlg, C);

  let basicConstraints: BasicConstraints | null = null;
  let keyUsage: KeyUsage | null = null;
  let subjectKeyId: Uint8Array | null = null;
  let authorityKeyId: Uint8Array | null = null;
  const E = `${P}.extensions`;
  for (const ext of extensions) {
    switch (ext.oid) {
      case OID.basicConstraints:
        basicConstraints = basicConstraintsOf(der, ext, `${E}.basicConstraints`, C);
        break;
      case OID.keyUsage:
        keyUsage = keyUsageOf(der, ext, `${E}.keyUsage`, C);
        break;
      case OID.subjectKeyId:
        subjectKeyId = subjectKeyIdOf(der, ext, `${E}.subjectKeyIdentifier`, C);
        break;
      case OID.authorityKeyId:
        authorityKeyId = authorityKeyIdOf(der, ext, `${E}.authorityKeyIdentifier`, C);
        break;
    }
  }

  return new ParsedCertificate(
    der,
    encodingOf(der, tbsTlv),
    version,
    serial,
    hex(serial),
    outerAlg.oid,
    signature,
    issuerTlv,
    subjectTlv,
    notBefore,
    notAfter,
    encodingOf(der, spkiTlv),
    publicKey,
    extensions,
    basicConstraints,
    keyUsage,
    subjectKeyId,
    authorityKeyId,
  );
}

/** Certificate with the Name renderings computed on first use (they only serve messages). */
class ParsedCertificate implements Certificate {
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  private issuerTextCache: string | undefined;
  private subjectTextCache: string | undefined;
  constructor(
    readonly der: Uint8Array,
    readonly tbs: Uint8Array,
    readonly version: number,
    readonly serial: Uint8Array,
    readonly serialHex: string,
    readonly signatureAlgorithm: string,
    readonly signature: Uint8Array,
    private readonly issuerTlv: Tlv,
    private readonly subjectTlv: Tlv,
    readonly notBefore: Date,
    readonly notAfter: Date,
    readonly spki: Uint8Array,
    readonly publicKey: PublicKey,
    readonly extensions: Extension[],
    readonly basicConstraints: BasicConstraints | null,
    readonly keyUsage: KeyUsage | null,
    readonly subjectKeyId: Uint8Array | null,
    readonly authorityKeyId: Uint8Array | null,
  ) {
    this.issuer = encodingOf(der, issuerTlv);
    this.subject = encodingOf(der, subjectTlv);
  }
  get issuerText(): string {
    return (this.issuerTextCache ??= nameText(this.der, this.issuerTlv));
  }
  get subjectText(): string {
    return (this.subjectTextCache ??= nameText(this.der, this.subjectTlv));
  }
}

// ---- CRLs ---------------------------------------------------------------------------------------

export function parseCrl(der: Uint8Array): Crl {
  return guard("CRL_STRUCTURE", "crl", () => parseCrlInner(der));
}

function parseCrlInner(der: Uint8Array): Crl {
  const C = "CRL_STRUCTURE";
  const env = signedEnvelope(der, "crl", "tbsCertList", C);
  const { tbsTlv } = env;

  const P = "crl.tbsCertList";
  const t = new DerSeq(der, tbsTlv, P, C);
  let version = 1;
  const vTlv = t.optional(Tag.INTEGER, "version");
  if (vTlv !== null) {
    const v = readSmallUnsigned(der, vTlv, `${P}.version`, 0xff);
    if (v !== 1) throw new DerError(C, `${P}.version: ${v} is not v2 (1)`, vTlv.start);
    version = 2;
  }
  const innerAlg = signatureAlgorithm(der, t.next(Tag.SEQUENCE, "signature"), `${P}.signature`, C);
  const issuerTlv = t.next(Tag.SEQUENCE, "issuer");
  checkName(der, issuerTlv, `${P}.issuer`, C);
  const issuerText = nameText(der, issuerTlv);
  const thisUpdate = readTime(der, t.any("thisUpdate"), `${P}.thisUpdate`);
  let nextUpdate: Date | null = null;
  const nt = t.peekTag();
  if (nt === Tag.UTC_TIME || nt === Tag.GENERALIZED_TIME) nextUpdate = readTime(der, t.any("nextUpdate"), `${P}.nextUpdate`);

  const revoked = new Map<string, Date>();
  let entryExtensions = false;
  const revokedTlv = t.optional(Tag.SEQUENCE, "revokedCertificates");
  if (revokedTlv !== null) {
    const R = `${P}.revokedCertificates`;
    const entries = new DerSeq(der, revokedTlv, R, C);
    while (!entries.done) {
      const e = new DerSeq(der, entries.next(Tag.SEQUENCE, "entry"), R, C, "entry");
      const serial = readUnsigned(der, e.next(Tag.INTEGER, "userCertificate"), R);
      const date = readTime(der, e.any("revocationDate"), R);
      const exts = e.optional(Tag.SEQUENCE, "crlEntryExtensions");
      if (exts !== null) {
        // Reason codes and the like: structure checked, content not used.
        parseExtensions(der, exts, `${R}.crlEntryExtensions`, C);
        entryExtensions = true;
      }
      e.finish();
      const key = hex(serial);
      if (!revoked.has(key)) revoked.set(key, date);
    }
  }

  let extensions: Extension[] = [];
  const extTlv = t.optional(0xa0, "crlExtensions");
  if (extTlv !== null) {
    const wrap = new DerSeq(der, extTlv, `${P}.crlExtensions`, C);
    extensions = parseExtensions(der, wrap.next(Tag.SEQUENCE, "list"), `${P}.crlExtensions`, C);
    wrap.finish();
  }
  t.finish();
  if ((entryExtensions || extTlv !== null) && version !== 2) {
    throw new DerError(C, `${P}: extensions in a v1 CRL`, tbsTlv.start);
  }

  const { outerAlg, signature } = envelopeSignature(der, env, innerAlg, C);

  let crlNumber: Uint8Array | null = null;
  let authorityKeyId: Uint8Array | null = null;
  const E = `${P}.crlExtensions`;
  for (const ext of extensions) {
    if (ext.oid === OID.crlNumber) {
      const n = extensionValue(der, ext, `${E}.cRLNumber`);
      if (n.tag !== Tag.INTEGER) throw new DerError(C, `${E}.cRLNumber: expected INTEGER`, n.start);
      crlNumber = readUnsigned(der, n, `${E}.cRLNumber`);
    } else if (ext.oid === OID.authorityKeyId) {
      authorityKeyId = authorityKeyIdOf(der, ext, `${E}.authorityKeyIdentifier`, C);
    }
  }

  return {
    der,
    tbs: encodingOf(der, tbsTlv),
    version,
    signatureAlgorithm: outerAlg.oid,
    signature,
    issuer: encodingOf(der, issuerTlv),
    issuerText,
    thisUpdate,
    nextUpdate,
    revoked,
    extensions,
    crlNumber,
    authorityKeyId,
  };
}

// ---- helpers for signature verification ---------------------------------------------------------

/** Node digest name for an ECDSA signature algorithm OID. */
export function ecdsaSignatureHash(signatureAlgorithmOid: string): "sha256" | "sha384" | "sha512" {
  switch (signatureAlgorithmOid) {
    case OID.ecdsaWithSha256:
      return "sha256";
    case OID.ecdsaWithSha384:
      return "sha384";
    case OID.ecdsaWithSha512:
      return "sha512";
  }
  throw new DerError("X509_SIGALG_UNSUPPORTED", `signature algorithm ${signatureAlgorithmOid} is not supported (ECDSA with SHA-256/384/512 are)`);
}

export type EcJwk = { kty: "EC"; crv: string; x: string; y: string };

/** JWK for crypto.createPublicKey({ key, format: "jwk" }) from an uncompressed point. */
export function ecJwk(point: Uint8Array, curve: string): EcJwk {
  const n = CURVE_FIELD_BYTES[curve];
  if (n === undefined) throw new DerError("X509_KEY_UNSUPPORTED", `EC curve ${curve} is not supported (P-256, P-384, P-521 are)`);
  if (point.length !== 1 + 2 * n || point[0] !== 0x04) {
    throw new DerError("X509_KEY_UNSUPPORTED", `${curve} public key must be an uncompressed ${1 + 2 * n}-byte point, found ${point.length} bytes`);
  }
  const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64url");
  return { kty: "EC", crv: curve, x: b64u(point.subarray(1, 1 + n)), y: b64u(point.subarray(1 + n)) };
}
