/**
 * What certificates and CRLs share: the signed envelope (SEQUENCE { tbs, signatureAlgorithm,
 * signatureValue }), algorithm identifiers, the OIDs this reader knows, and serial rendering.
 */
import { DerError, type DerCode } from "../../core/errors.js";
import { DerSeq, Tag, encodingOf, readBitStringBytes, readOid, readTlv, type Tlv } from "./der.js";

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

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, "0"));

/** Lower-case hex; faster than Buffer for the short serials we key maps with. */
export function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!]!;
  return s;
}

export interface AlgorithmId {
  oid: string;
  /** Parameters element, or null when absent. */
  params: Tlv | null;
}

export function algorithmIdentifier(buf: Uint8Array, tlv: Tlv, path: string, code: DerCode): AlgorithmId {
  const r = new DerSeq(buf, tlv, path, code);
  const oid = readOid(buf, r.next(Tag.OID, "algorithm"), `${path}.algorithm`);
  const params = r.done ? null : r.any("parameters");
  r.finish();
  return { oid, params };
}

/** Signature AlgorithmIdentifier: for ECDSA, parameters must be absent or NULL (Gramine writes NULL). */
export function signatureAlgorithm(buf: Uint8Array, tlv: Tlv, path: string, code: DerCode): AlgorithmId {
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

/** Run `f`, turning anything that is not already a DerError into one (belt and braces). */
export function guard<T>(code: DerCode, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof DerError) throw e;
    throw new DerError(code, `${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function topLevel(der: Uint8Array, what: string, code: DerCode): Tlv {
  if (!(der instanceof Uint8Array)) throw new DerError(code, `${what}: input is not a byte array`);
  const top = readTlv(der, 0, der.length, 0, what);
  if (top.tag !== Tag.SEQUENCE) throw new DerError(code, `${what}: expected SEQUENCE, found 0x${top.tag.toString(16)}`, 0);
  if (top.end !== der.length) throw new DerError("DER_TRAILING", `${what}: ${der.length - top.end} trailing bytes after the DER element`, top.end);
  return top;
}

export interface SignedEnvelope {
  what: string;
  tbsName: string;
  tbsTlv: Tlv;
  outerAlgTlv: Tlv;
  sigTlv: Tlv;
}

/** SEQUENCE { tbs, signatureAlgorithm, signatureValue }, nothing more. */
export function signedEnvelope(der: Uint8Array, what: string, tbsName: string, code: DerCode): SignedEnvelope {
  const top = topLevel(der, what, code);
  const seq = new DerSeq(der, top, what, code);
  const tbsTlv = seq.next(Tag.SEQUENCE, tbsName);
  const outerAlgTlv = seq.next(Tag.SEQUENCE, "signatureAlgorithm");
  const sigTlv = seq.next(Tag.BIT_STRING, "signatureValue");
  seq.finish();
  return { what, tbsName, tbsTlv, outerAlgTlv, sigTlv };
}

/** The outer algorithm must equal the signed inner one; then the signature bytes. */
export function envelopeSignature(der: Uint8Array, env: SignedEnvelope, innerAlg: AlgorithmId, code: DerCode): { outerAlg: AlgorithmId; signature: Uint8Array } {
  const outerAlg = signatureAlgorithm(der, env.outerAlgTlv, `${env.what}.signatureAlgorithm`, code);
  if (!sameAlgorithm(der, innerAlg, outerAlg)) {
    throw new DerError("X509_SIGALG_MISMATCH", `${env.what}.signatureAlgorithm ${outerAlg.oid} differs from ${env.tbsName}.signature ${innerAlg.oid}`, env.outerAlgTlv.start);
  }
  return { outerAlg, signature: readBitStringBytes(der, env.sigTlv, `${env.what}.signatureValue`) };
}

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
