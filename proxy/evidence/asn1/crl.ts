/** X.509 CRLs (RFC 5280) from DER: structure only (see x509.ts). */
import { DerError } from "../../core/errors.js";
import { DerSeq, Tag, encodingOf, readSmallUnsigned, readTime, readUnsigned } from "./der.js";
import { authorityKeyIdOf, extensionValue, parseExtensions, type Extension } from "./extensions.js";
import { checkName, nameText } from "./name.js";
import { OID, envelopeSignature, guard, hex, signatureAlgorithm, signedEnvelope } from "./signed.js";

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
