/** X.509 certificates (RFC 5280) from DER: structure only (see x509.ts). */
import { DerError } from "../../core/errors.js";
import { DerSeq, Tag, encodingOf, readBitString, readSmallUnsigned, readTime, readUnsigned, type Tlv } from "./der.js";
import { authorityKeyIdOf, basicConstraintsOf, keyUsageOf, parseExtensions, subjectKeyIdOf, type BasicConstraints, type Extension, type KeyUsage } from "./extensions.js";
import { checkName, nameText } from "./name.js";
import { publicKeyOf, type PublicKey } from "./public-key.js";
import { OID, envelopeSignature, guard, hex, signatureAlgorithm, signedEnvelope } from "./signed.js";

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

  for (const [tag, name] of [
    [0x81, "issuerUniqueID"],
    [0x82, "subjectUniqueID"],
  ] as const) {
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
