/**
 * Building RA-TLS certificates laid out as Gramine lays them out (DESIGN.md §4), so that
 * Gramine's verifier and ours accept each other. Pure: the caller brings the key and the quotes
 * (see attest/identity.ts, which asks the provider for them over these report data).
 *
 * Extensions, in Gramine's order, all non-critical: basicConstraints (CA:FALSE), subject and
 * authority key identifiers, Gramine's legacy quote (OID written as Gramine writes it), and the
 * TCG DICE tagged evidence.
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { concatBytes } from "../../core/bytes.js";
import { InputError } from "../../core/errors.js";
import { encodeCbor, type CborValue } from "../../evidence/ratls/cbor.js";
import { seq, tlv } from "./der-write.js";
import { CBOR_TAG_TAGGED_EVIDENCE, GRAMINE_LEGACY_OID_CONTENT, OID_TCG_TAGGED_EVIDENCE, PUBKEY_HASH_SHA256 } from "../../evidence/ratls/read.js";
import { authorityKeyIdentifier, buildCertificate, keyIdentifier, subjectKeyIdentifier, type Name } from "./x509.js";
import { parseCertificate } from "../../evidence/asn1/x509.js";

export const RATLS_SUBJECT: Name = [
  ["CN", "attestable-mcp"],
  ["O", "attestable-mcp-proxy"],
  ["C", "US"],
];

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

export function spkiOf(key: KeyObject): Uint8Array {
  return new Uint8Array(createPublicKey(key).export({ format: "der", type: "spki" }));
}

/**
 * The claims map: "pubkey-hash" first (a byte string holding CBOR [1, SHA-256(SPKI)], as Gramine
 * writes it), then any extra claims (a batch's Merkle root and size) as given.
 */
export function buildClaims(spki: Uint8Array, extra: Record<string, CborValue> = {}): Uint8Array {
  if ("pubkey-hash" in extra) throw new InputError("CLAIMS_BUILD", '"pubkey-hash" is computed from the key, not given');
  const m = new Map<CborValue, CborValue>([["pubkey-hash", encodeCbor([PUBKEY_HASH_SHA256, sha256(spki)])]]);
  for (const [k, v] of Object.entries(extra)) m.set(k, v);
  return encodeCbor(m);
}

/** Report data of the tagged-evidence quote: SHA-256(claims) ‖ 0³². */
export function taggedReportData(claims: Uint8Array): Uint8Array {
  return concatBytes(sha256(claims), new Uint8Array(32));
}

/** Report data of Gramine's legacy quote: SHA-256(SPKI DER) ‖ 0³². */
export function legacyReportData(spki: Uint8Array): Uint8Array {
  return concatBytes(sha256(spki), new Uint8Array(32));
}

/** CBOR tag 60000 over [quote, claims]. */
export function taggedEvidence(quote: Uint8Array, claims: Uint8Array): Uint8Array {
  return encodeCbor({ tag: CBOR_TAG_TAGGED_EVIDENCE, value: [quote, claims] });
}

export interface RaTlsCertificateSpec {
  /** The certificate's private key (it signs the certificate itself). */
  key: KeyObject;
  claims: Uint8Array;
  /** Quote over taggedReportData(claims). */
  taggedQuote: Uint8Array;
  /** Quote over legacyReportData(spki); omitted: no legacy extension. */
  legacyQuote?: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  subject?: Name;
}

export function buildRaTlsCertificate(spec: RaTlsCertificateSpec): Uint8Array {
  const keyId = keyIdentifier(spkiOf(spec.key));
  return buildCertificate({
    subject: spec.subject ?? RATLS_SUBJECT,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    publicKey: spec.key,
    signingKey: spec.key,
    extensions: [
      // CA:FALSE, non-critical, as Gramine writes it (an empty SEQUENCE).
      { oid: "2.5.29.19", critical: false, value: seq() },
      subjectKeyIdentifier({ keyId }),
      authorityKeyIdentifier(keyId),
      ...(spec.legacyQuote ? [{ oid: { raw: tlv(0x06, GRAMINE_LEGACY_OID_CONTENT) }, value: spec.legacyQuote }] : []),
      { oid: OID_TCG_TAGGED_EVIDENCE, value: taggedEvidence(spec.taggedQuote, spec.claims) },
    ],
  });
}

/** The SubjectPublicKeyInfo DER of a certificate (e.g. the one a TLS connection was served). */
export function spkiOfCertificate(certDer: Uint8Array): Uint8Array {
  return parseCertificate(certDer).spki;
}
