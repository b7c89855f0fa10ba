/** Byte-level mutation helpers shared by the mutation and fuzz tests. */
import type { CollateralParts } from "../../proxy/evidence/collateral.js";

/** Deterministic PRNG (xorshift32): fuzz runs are reproducible from their seed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

export function flipped(b: Uint8Array, i: number, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(b);
  out[i] = out[i]! ^ mask;
  return out;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** Number of DER bytes of each PEM block in `text`. */
export function pemDerLengths(text: string): number[] {
  return [...text.matchAll(BLOCK)].map((m) => Buffer.from(m[2]!.replace(/\s+/g, ""), "base64").length);
}

/**
 * `text` with DER byte `i` of PEM block `block` flipped, re-encoded in place (same length,
 * line breaks kept), so that length fields around the text stay right.
 */
export function flipPemDer(text: string, block: number, i: number): string {
  let n = 0;
  return text.replace(BLOCK, (all, label: string, body: string) => {
    if (n++ !== block) return all;
    const der = Buffer.from(body.replace(/\s+/g, ""), "base64");
    der[i] = der[i]! ^ 0x01;
    const b64 = der.toString("base64");
    let k = 0;
    const newBody = body.replace(/[^\s]/g, () => b64[k++]!);
    return `-----BEGIN ${label}-----${newBody}-----END ${label}-----`;
  });
}

/** Collateral parts → the dcap-qvl object shape, which verifyQuote prepares (and judges) itself. */
export function partsToQvl(p: CollateralParts): Record<string, string> {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return {
    pck_crl_issuer_chain: p.pckCrlIssuerChain,
    root_ca_crl: hex(p.rootCaCrl),
    pck_crl: hex(p.pckCrl),
    tcb_info_issuer_chain: p.tcbInfoIssuerChain,
    tcb_info: p.tcbInfo,
    tcb_info_signature: hex(p.tcbInfoSignature),
    qe_identity_issuer_chain: p.qeIdentityIssuerChain,
    qe_identity: p.qeIdentity,
    qe_identity_signature: hex(p.qeIdentitySignature),
  };
}
