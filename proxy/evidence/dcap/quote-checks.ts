/**
 * The checks a DCAP quote carries within itself: the attestation key's signature over header and
 * body, the QE report's binding of that key, the PCK certificate chain (certification data
 * type 5) to a pinned root, the QE report's signature by the PCK leaf, and PCK revocation.
 */
import { createHash } from "node:crypto";
import { equalBytes, isAllZero, toHex } from "../../core/bytes.js";
import type { Failed, Ok, Result } from "../../core/result.js";
import { findLeaf, validatePath, type ValidPath } from "./chain.js";
import type { Collateral } from "./collateral.js";
import { pemBlocks } from "../asn1/pem.js";
import { CERT_DATA_PCK_CHAIN, type Quote } from "./quote.js";
import type { TrustAnchor } from "./roots.js";
import { verifyRawByCert, verifyRawP256, verifySignedBy } from "./signatures.js";
import { parseCertificate, type Certificate } from "../asn1/x509.js";

export function checkQuoteSignature(q: Quote): Result {
  const sd = q.signatureData;
  return verifyRawP256(q.signedBytes, sd.signature, sd.attestationKey)
    ? { ok: true, value: `ECDSA P-256 signature over header and body verifies under attestation key ${toHex(sd.attestationKey).slice(0, 16)}…` }
    : { ok: false, reason: "the attestation key's signature over the quote header and body does not verify" };
}

/** QE report data must be SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes. */
export function checkQeBinding(q: Quote): Result {
  const sd = q.signatureData;
  const want = createHash("sha256").update(sd.attestationKey).update(sd.qeAuthData).digest();
  const rd = sd.qeReport.reportData;
  if (!equalBytes(rd.subarray(0, 32), want)) {
    return { ok: false, reason: `QE report data ${toHex(rd.subarray(0, 32))} is not SHA-256(attestation key ‖ QE auth data) ${toHex(want)}` };
  }
  if (!isAllZero(rd.subarray(32))) return { ok: false, reason: "QE report data bytes 32..63 are not zero" };
  return { ok: true, value: "QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 0³²" };
}

/**
 * Parsed PCK chains by SHA-256 of the certification data: every quote from one platform carries
 * the same chain text, so this is a parse cache (what is trusted is still decided per quote).
 */
const chainCache = new Map<string, Certificate[]>();
const CHAIN_CACHE_MAX = 256;

/** The PCK certificates carried in certification data type 5, in the order found. */
export function pckCertificates(q: Quote): Result<Certificate[]> {
  const cd = q.signatureData.certification;
  if (cd.type !== CERT_DATA_PCK_CHAIN) {
    const why =
      cd.type >= 1 && cd.type <= 3
        ? "carries an encrypted or plain PPID, not the PCK certificate: fetch it from a PCCS"
        : cd.type === 4
          ? "carries only the PCK leaf, not its chain"
          : "is not a PCK certificate chain";
    return { ok: false, reason: `certification data type ${cd.type} ${why}`, code: "PCK_CHAIN_MISSING" };
  }
  const id = createHash("sha256").update(cd.data).digest("hex");
  const cached = chainCache.get(id);
  if (cached) return { ok: true, value: cached };
  try {
    const ders = pemBlocks(cd.data);
    if (ders.length === 0) return { ok: false, reason: "certification data type 5 holds no PEM certificate", code: "PCK_CHAIN_MISSING" };
    const certs = ders.map((d) => parseCertificate(d));
    if (chainCache.size >= CHAIN_CACHE_MAX) chainCache.clear();
    chainCache.set(id, certs);
    return { ok: true, value: certs };
  } catch (e) {
    return { ok: false, reason: `PCK chain in certification data does not parse: ${(e as Error).message}` };
  }
}

export function checkPckChain(certs: Certificate[], anchors: readonly TrustAnchor[], at: Date): Result<ValidPath> {
  const leaf = findLeaf(certs);
  return leaf.ok ? validatePath(leaf.value, certs, anchors, at) : leaf;
}

/**
 * A quote's PCK certificates and their path to a trusted root at one time: judged once per
 * appraisal, and shared by the collateral lookup (which needs the leaf) and the verifier.
 */
export type PckPath = { certs: Failed; chain: null } | { certs: Ok<Certificate[]>; chain: Result<ValidPath> };

export function pckPath(q: Quote, anchors: readonly TrustAnchor[], at: Date): PckPath {
  const certs = pckCertificates(q);
  return certs.ok ? { certs, chain: checkPckChain(certs.value, anchors, at) } : { certs, chain: null };
}

export function checkQeSignature(q: Quote, leaf: Certificate): Result {
  const sd = q.signatureData;
  return verifyRawByCert(sd.qeReportBytes, sd.qeReportSignature, leaf)
    ? { ok: true, value: `QE report signed by ${leaf.subjectText}` }
    : { ok: false, reason: `QE report signature does not verify under the PCK certificate (${leaf.subjectText})` };
}

/**
 * The PCK CRL must come from the CA that issued the PCK certificate (Processor or Platform CA)
 * and be signed by it; the root CA CRL, signed by the anchor, covers the intermediates.
 */
export function checkPckRevocation(p: ValidPath, c: Collateral, at: Date): Result {
  const leaf = p.path[0]!;
  const issuer: Certificate = p.path[1] ?? p.anchor.cert;
  if (!equalBytes(c.pckCrl.issuer, leaf.issuer)) {
    return { ok: false, reason: `PCK CRL is issued by ${c.pckCrl.issuerText}, the PCK certificate by ${leaf.issuerText}` };
  }
  if (!verifySignedBy(c.pckCrl, issuer)) return { ok: false, reason: `PCK CRL signature does not verify under ${issuer.subjectText}` };
  // The CRL's issuer chain, as served, must name the same CA and chain to the same root.
  const found = findLeaf(c.pckCrlIssuerChain);
  if (!found.ok) return { ok: false, reason: `PCK CRL issuer chain: ${found.reason}` };
  const crlSigner = found.value;
  if (!equalBytes(crlSigner.spki, issuer.spki)) return { ok: false, reason: `PCK CRL issuer chain names ${crlSigner.subjectText}, not the PCK certificate's issuer` };
  const crlPath = validatePath(crlSigner, c.pckCrlIssuerChain, [p.anchor], at);
  if (!crlPath.ok) return { ok: false, reason: `PCK CRL issuer chain: ${crlPath.reason}` };
  if (!verifySignedBy(c.rootCaCrl, p.anchor.cert)) return { ok: false, reason: `root CA CRL signature does not verify under ${p.anchor.cert.subjectText}` };
  if (c.pckCrl.revoked.has(leaf.serialHex)) return { ok: false, reason: `PCK certificate serial ${leaf.serialHex} is revoked by the PCK CRL` };
  for (const ca of p.path.slice(1)) {
    if (c.rootCaCrl.revoked.has(ca.serialHex)) return { ok: false, reason: `${ca.subjectText} serial ${ca.serialHex} is revoked by the root CA CRL` };
  }
  return { ok: true, value: `not revoked (PCK CRL ${c.pckCrl.revoked.size} entries, root CA CRL ${c.rootCaCrl.revoked.size})` };
}

/** For benchmarks that measure the cold path. */
export function clearPckChainCache(): void {
  chainCache.clear();
}
