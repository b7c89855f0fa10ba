/**
 * Building X.509 v3 certificates and v2 CRLs (RFC 5280), signed with ECDSA: the writing side of
 * x509.ts, used to mint RA-TLS certificates and the dev PKI that mimics Intel's (root CA, PCK
 * CA, PCK leaf, CRLs). Layouts follow Intel's: Names as RDNs of one attribute each (C as
 * PrintableString, the rest UTF8String), ECDSA AlgorithmIdentifiers without parameters,
 * extensions in the order given, CRL extensions CRL number then AKI.
 *
 * Keys are node:crypto KeyObjects; only EC P-256 and P-384 are supported (P-256 signing keys sign
 * with ecdsa-with-SHA256, P-384 with ecdsa-with-SHA384). Misuse is InputError: X509_BUILD_KEY
 * for an unsupported or wrong-kind key, X509_BUILD for any other bad argument, DER_ENCODE from
 * der-write.ts.
 */
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { Tag, readBitStringBytes, readExactTlv, DerSeq } from "../../evidence/asn1/der.js";
import { bitString, bool, enumerated, explicit, ia5String, int, octetString, oid, printableString, seq, set, time, tlv, utf8String } from "./der-write.js";
import { DerError, InputError } from "../../core/errors.js";
import { OID } from "../../evidence/asn1/x509.js";

function fail(message: string): never {
  throw new InputError("X509_BUILD", message);
}

// ---- names ------------------------------------------------------------------------------------

export type NameAttribute = "CN" | "O" | "OU" | "C" | "L" | "ST";

/** Relative distinguished names in order, one attribute each, e.g. [["CN", "x"], ["O", "y"]]. */
export type Name = [attr: NameAttribute, value: string][];

const NAME_OIDS: Record<NameAttribute, string> = {
  CN: "2.5.4.3",
  O: "2.5.4.10",
  OU: "2.5.4.11",
  C: "2.5.4.6",
  L: "2.5.4.7",
  ST: "2.5.4.8",
};

/** RDNSequence of `name`: one SET per attribute, C as PrintableString (two letters), others UTF8String. */
export function encodeName(name: Name): Uint8Array {
  if (!Array.isArray(name)) fail("Name must be an array of [attribute, value] pairs");
  return seq(
    ...name.map(([attr, value]) => {
      const o = NAME_OIDS[attr];
      if (o === undefined) fail(`Name attribute ${JSON.stringify(attr)} is not one of ${Object.keys(NAME_OIDS).join(", ")}`);
      if (typeof value !== "string" || value.length === 0) fail(`Name attribute ${attr} must have a non-empty string value`);
      if (attr === "C" && !/^[A-Za-z]{2}$/.test(value)) fail(`Name attribute C must be a two-letter country code, got ${JSON.stringify(value)}`);
      return set(seq(oid(o), attr === "C" ? printableString(value) : utf8String(value)));
    }),
  );
}

// ---- extensions -------------------------------------------------------------------------------

export interface ExtensionSpec {
  /** Dotted OID, or the complete OBJECT IDENTIFIER element (tag, length, content) written verbatim. */
  oid: string | { raw: Uint8Array };
  /** Default false; false omits the BOOLEAN (DER default). */
  critical?: boolean;
  /** Bytes placed inside the extnValue OCTET STRING (normally DER; written as given). */
  value: Uint8Array;
}

function extensionOid(spec: ExtensionSpec): Uint8Array {
  if (typeof spec.oid === "string") return oid(spec.oid);
  const raw = spec.oid?.raw;
  if (!(raw instanceof Uint8Array)) fail("extension oid must be a dotted string or { raw: Uint8Array }");
  try {
    const t = readExactTlv(raw, 0, raw.length, "extension OID");
    if (t.tag !== Tag.OID || t.contentEnd === t.contentStart) throw new DerError("DER_TAG", "not a non-empty OBJECT IDENTIFIER element");
  } catch (e) {
    fail(`extension raw OID ${Buffer.from(raw).toString("hex")} is not one OBJECT IDENTIFIER element: ${(e as Error).message}`);
  }
  return Uint8Array.from(raw);
}

function encodeExtensions(specs: readonly ExtensionSpec[]): Uint8Array {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  for (const spec of specs) {
    const o = extensionOid(spec);
    const key = Buffer.from(o).toString("hex");
    if (seen.has(key)) fail(`extension ${typeof spec.oid === "string" ? spec.oid : key} appears twice`);
    seen.add(key);
    if (!(spec.value instanceof Uint8Array)) fail(`extension ${key}: value must be a Uint8Array`);
    out.push(spec.critical === true ? seq(o, bool(true), octetString(spec.value)) : seq(o, octetString(spec.value)));
  }
  return seq(...out);
}

/** basicConstraints (critical). pathLen only with ca: true. cA FALSE is omitted (DER default): 30 00. */
export function basicConstraints(p: { ca: boolean; pathLen?: number }): ExtensionSpec {
  if (p.pathLen !== undefined) {
    if (!p.ca) fail("basicConstraints: pathLen is only allowed with ca: true");
    if (!Number.isSafeInteger(p.pathLen) || p.pathLen < 0) fail(`basicConstraints: pathLen ${p.pathLen} is not a non-negative integer`);
  }
  const parts: Uint8Array[] = [];
  if (p.ca) parts.push(bool(true));
  if (p.pathLen !== undefined) parts.push(int(p.pathLen));
  return { oid: OID.basicConstraints, critical: true, value: seq(...parts) };
}

export interface KeyUsageBits {
  digitalSignature?: boolean;
  nonRepudiation?: boolean;
  keyEncipherment?: boolean;
  dataEncipherment?: boolean;
  keyAgreement?: boolean;
  keyCertSign?: boolean;
  cRLSign?: boolean;
  encipherOnly?: boolean;
  decipherOnly?: boolean;
}

const KEY_USAGE_BITS: readonly (keyof KeyUsageBits)[] = [
  "digitalSignature",
  "nonRepudiation",
  "keyEncipherment",
  "dataEncipherment",
  "keyAgreement",
  "keyCertSign",
  "cRLSign",
  "encipherOnly",
  "decipherOnly",
];

/** keyUsage (critical), as a DER named bit list (trailing zero bits dropped). At least one bit. */
export function keyUsage(bits: KeyUsageBits): ExtensionSpec {
  for (const k of Object.keys(bits)) {
    if (!KEY_USAGE_BITS.includes(k as keyof KeyUsageBits)) fail(`keyUsage: unknown bit ${JSON.stringify(k)}`);
  }
  let highest = -1;
  const bytes = new Uint8Array(2);
  KEY_USAGE_BITS.forEach((name, i) => {
    if (bits[name] === true) {
      bytes[i >> 3]! |= 0x80 >> (i & 7);
      highest = i;
    }
  });
  if (highest < 0) fail("keyUsage: at least one bit must be set");
  const len = (highest >> 3) + 1;
  return { oid: OID.keyUsage, critical: true, value: bitString(bytes.slice(0, len), 7 - (highest & 7)) };
}

function spkiDer(key: KeyObject): Uint8Array {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  if (pub.type !== "public") fail(`expected an asymmetric key, got a ${key.type} key`);
  return new Uint8Array(pub.export({ format: "der", type: "spki" }));
}

/**
 * RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING content (without the
 * unused-bits octet) of a SubjectPublicKeyInfo (DER) or of a key's SPKI.
 */
export function keyIdentifier(spki: Uint8Array | KeyObject): Uint8Array {
  const der = spki instanceof Uint8Array ? spki : spkiDer(spki);
  let key: Uint8Array;
  try {
    const top = readExactTlv(der, 0, der.length, "SubjectPublicKeyInfo");
    const r = new DerSeq(der, top, "SubjectPublicKeyInfo");
    r.next(Tag.SEQUENCE, "algorithm");
    key = readBitStringBytes(der, r.next(Tag.BIT_STRING, "subjectPublicKey"), "SubjectPublicKeyInfo.subjectPublicKey");
    r.finish();
  } catch (e) {
    fail(`keyIdentifier: not a SubjectPublicKeyInfo: ${(e as Error).message}`);
  }
  return new Uint8Array(createHash("sha1").update(key).digest());
}

/**
 * subjectKeyIdentifier (non-critical): the method-1 key identifier of an SPKI (DER) or key, or
 * a given identifier ({ keyId }; Intel's are not method 1).
 */
export function subjectKeyIdentifier(spki: Uint8Array | KeyObject | { keyId: Uint8Array }): ExtensionSpec {
  const id = spki instanceof Uint8Array || !("keyId" in spki) ? keyIdentifier(spki) : spki.keyId;
  if (id.length === 0) fail("subjectKeyIdentifier: empty key identifier");
  return { oid: OID.subjectKeyId, value: octetString(id) };
}

/** authorityKeyIdentifier (non-critical) with keyIdentifier [0] only, as Intel writes it. */
export function authorityKeyIdentifier(keyId: Uint8Array): ExtensionSpec {
  if (!(keyId instanceof Uint8Array) || keyId.length === 0) fail("authorityKeyIdentifier: key identifier must be non-empty bytes");
  return { oid: OID.authorityKeyId, value: seq(tlv(0x80, keyId)) };
}

/** cRLDistributionPoints (non-critical) with one distribution point: fullName [0] { URI [6] url }. */
export function crlDistributionPoint(url: string): ExtensionSpec {
  if (typeof url !== "string" || url.length === 0 || !/^[\x21-\x7e]+$/.test(url)) fail(`crlDistributionPoint: ${JSON.stringify(url)} is not a URI`);
  const uri = ia5String(url);
  uri[0] = 0x86; // [6] IMPLICIT IA5String
  return { oid: "2.5.29.31", value: seq(seq(explicit(0, explicit(0, uri)))) };
}

// ---- keys and signatures -------------------------------------------------------------------------

type Curve = "P-256" | "P-384";

const CURVE_OF: Record<string, Curve> = { prime256v1: "P-256", secp384r1: "P-384" };
const SIG: Record<Curve, { oid: string; hash: "sha256" | "sha384" }> = {
  "P-256": { oid: OID.ecdsaWithSha256, hash: "sha256" },
  "P-384": { oid: OID.ecdsaWithSha384, hash: "sha384" },
};

function curveOf(key: KeyObject, what: string): Curve {
  if (key === null || typeof key !== "object" || typeof (key as { type?: unknown }).type !== "string") {
    throw new InputError("X509_BUILD_KEY", `${what}: expected a KeyObject`);
  }
  if (key.type === "secret" || key.asymmetricKeyType !== "ec") {
    throw new InputError("X509_BUILD_KEY", `${what}: only EC keys (P-256, P-384) are supported, got ${key.asymmetricKeyType ?? key.type}`);
  }
  const named = key.asymmetricKeyDetails?.namedCurve ?? "unknown";
  const curve = CURVE_OF[named];
  if (curve === undefined) throw new InputError("X509_BUILD_KEY", `${what}: EC curve ${named} is not supported (P-256, P-384 are)`);
  return curve;
}

function privateSigningKey(key: KeyObject): Curve {
  const curve = curveOf(key, "signingKey");
  if (key.type !== "private") throw new InputError("X509_BUILD_KEY", "signingKey: a private key is required");
  return curve;
}

function checkDates(a: Date, b: Date, what: [string, string]): void {
  for (const [d, n] of [
    [a, what[0]],
    [b, what[1]],
  ] as const) {
    if (!(d instanceof Date) || Number.isNaN(d.getTime())) fail(`${n} is not a valid Date`);
  }
  if (b.getTime() < a.getTime()) fail(`${what[1]} ${b.toISOString()} is before ${what[0]} ${a.toISOString()}`);
}

/** A positive serial of at most 20 octets (magnitude), as RFC 5280 requires. */
function checkSerial(serial: Uint8Array, what: string): void {
  if (!(serial instanceof Uint8Array)) fail(`${what} must be a Uint8Array`);
  let i = 0;
  while (i < serial.length && serial[i] === 0) i++;
  if (i === serial.length) fail(`${what} must be positive (non-zero)`);
  if (serial.length - i > 20) fail(`${what} is ${serial.length - i} octets; at most 20 are allowed`);
}

function randomSerial(): Uint8Array {
  for (;;) {
    const s = new Uint8Array(randomBytes(16));
    s[0]! &= 0x7f;
    if (s.some((b) => b !== 0)) return s;
  }
}

function signed(tbs: Uint8Array, algorithm: Uint8Array, hash: string, key: KeyObject): Uint8Array {
  const signature = new Uint8Array(sign(hash, tbs, key)); // DER Ecdsa-Sig-Value for EC keys
  return seq(tbs, algorithm, bitString(signature));
}

// ---- certificates -------------------------------------------------------------------------------

export interface CertificateSpec {
  subject: Name;
  /** Default: the subject (self-issued). */
  issuer?: Name;
  /** Unsigned magnitude, 1..20 octets, non-zero. Default: 16 random bytes, top bit clear. */
  serial?: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** The subject key (a public key, or a private key whose public half is used). */
  publicKey: KeyObject;
  /** The issuer's private key. */
  signingKey: KeyObject;
  /** In order; none: the certificate has no extensions field (still v3). */
  extensions?: ExtensionSpec[];
}

/**
 * The tbsCertificate alone. `signingKey` may be public here: only its curve is used, to pick the
 * signature algorithm (so an existing certificate's TBS can be rebuilt from its issuer's key).
 */
export function buildTbsCertificate(spec: CertificateSpec): Uint8Array {
  return tbsCertificate(spec, curveOf(spec.signingKey, "signingKey"));
}

function tbsCertificate(spec: CertificateSpec, signingCurve: Curve): Uint8Array {
  curveOf(spec.publicKey, "publicKey");
  checkDates(spec.notBefore, spec.notAfter, ["notBefore", "notAfter"]);
  const serial = spec.serial ?? randomSerial();
  checkSerial(serial, "serial");
  const ext = spec.extensions ?? [];
  return seq(
    explicit(0, int(2)),
    int(serial),
    seq(oid(SIG[signingCurve].oid)),
    encodeName(spec.issuer ?? spec.subject),
    seq(time(spec.notBefore), time(spec.notAfter)),
    encodeName(spec.subject),
    spkiDer(spec.publicKey),
    ...(ext.length > 0 ? [explicit(3, encodeExtensions(ext))] : []),
  );
}

/** A DER X.509 v3 certificate signed by `signingKey` (ecdsa-with-SHA256 for P-256, -SHA384 for P-384). */
export function buildCertificate(spec: CertificateSpec): Uint8Array {
  const curve = privateSigningKey(spec.signingKey);
  const tbs = tbsCertificate(spec, curve);
  return signed(tbs, seq(oid(SIG[curve].oid)), SIG[curve].hash, spec.signingKey);
}

// ---- CRLs ---------------------------------------------------------------------------------------

export interface RevokedSpec {
  serial: Uint8Array;
  date: Date;
  /** CRLReason (e.g. 1 keyCompromise, as Intel writes): adds the reasonCode entry extension. */
  reason?: number;
}

export interface CrlSpec {
  issuer: Name;
  signingKey: KeyObject;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked?: RevokedSpec[];
  /** Default 1 (Intel's CRLs always carry one). */
  crlNumber?: number | bigint;
  /** Adds the authorityKeyIdentifier extension. */
  authorityKeyId?: Uint8Array;
}

const REASON_CODE = "2.5.29.21";

/** The tbsCertList alone; as buildTbsCertificate, `signingKey` may be public. */
export function buildTbsCertList(spec: CrlSpec): Uint8Array {
  return tbsCertList(spec, curveOf(spec.signingKey, "signingKey"));
}

function tbsCertList(spec: CrlSpec, signingCurve: Curve): Uint8Array {
  checkDates(spec.thisUpdate, spec.nextUpdate, ["thisUpdate", "nextUpdate"]);
  const number = spec.crlNumber ?? 1;
  if ((typeof number !== "number" && typeof number !== "bigint") || number < 0 || (typeof number === "number" && !Number.isSafeInteger(number))) {
    fail(`crlNumber ${String(number)} is not a non-negative integer`);
  }
  const entries = (spec.revoked ?? []).map((r, i) => {
    checkSerial(r.serial, `revoked[${i}].serial`);
    if (!(r.date instanceof Date) || Number.isNaN(r.date.getTime())) fail(`revoked[${i}].date is not a valid Date`);
    if (r.reason === undefined) return seq(int(r.serial), time(r.date));
    if (!Number.isInteger(r.reason) || r.reason < 0 || r.reason > 10 || r.reason === 7) fail(`revoked[${i}].reason ${r.reason} is not a CRLReason`);
    return seq(int(r.serial), time(r.date), seq(seq(oid(REASON_CODE), octetString(enumerated(r.reason)))));
  });
  const extensions: ExtensionSpec[] = [{ oid: OID.crlNumber, value: int(number) }];
  if (spec.authorityKeyId !== undefined) extensions.push(authorityKeyIdentifier(spec.authorityKeyId));
  return seq(
    int(1),
    seq(oid(SIG[signingCurve].oid)),
    encodeName(spec.issuer),
    time(spec.thisUpdate),
    time(spec.nextUpdate),
    // RFC 5280 §5.1.2.6: with no revoked certificates the list is absent, not empty.
    ...(entries.length > 0 ? [seq(...entries)] : []),
    explicit(0, encodeExtensions(extensions)),
  );
}

/** A DER v2 CRL signed by `signingKey`, with the CRL number and (when given) AKI extensions. */
export function buildCrl(spec: CrlSpec): Uint8Array {
  const curve = privateSigningKey(spec.signingKey);
  const tbs = tbsCertList(spec, curve);
  return signed(tbs, seq(oid(SIG[curve].oid)), SIG[curve].hash, spec.signingKey);
}

// ---- PEM ----------------------------------------------------------------------------------------

/** PEM armour: base64 in 64-character lines, LF line ends, a final newline. */
export function derToPem(der: Uint8Array, label = "CERTIFICATE"): string {
  if (!/^[\x21-\x2c\x2e-\x7e]+(?: [\x21-\x2c\x2e-\x7e]+)*$/.test(label)) fail(`PEM label ${JSON.stringify(label)} is not valid`);
  if (der.length === 0) fail("PEM: no data");
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}
