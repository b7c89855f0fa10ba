/** Byte-level mutation helpers shared by the mutation and fuzz tests. */
import type { CollateralParts } from "../../proxy/evidence/dcap/collateral.js";

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

/** Structure-aware quote mutations. */
export function mutateQuote(r: () => number, base: Uint8Array): Uint8Array {
  const pick = (n: number) => Math.floor(r() * n);
  const b = Uint8Array.from(base);
  const dv = new DataView(b.buffer);
  const boundary = () => [0, 1, 2, 63, 64, 384, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0xffffffff, base.length, pick(0x100000000)][pick(13)]!;
  switch (pick(8)) {
    case 0: // a few random bytes anywhere
      for (let k = 1 + pick(4); k > 0; k--) b[pick(b.length)] = pick(256);
      return b;
    case 1: // the v3 signature data length, or the v5 body size
      if (b.length > 440) dv.setUint32(dv.getUint16(0, true) === 5 ? 50 : 432, boundary(), true);
      return b;
    case 2: {
      // a u16 / u32 length field somewhere in the signature data
      const at = 436 + pick(Math.max(1, b.length - 440));
      if (r() < 0.5) dv.setUint16(at, boundary() & 0xffff, true);
      else if (at + 4 <= b.length) dv.setUint32(at, boundary(), true);
      return b;
    }
    case 3: // truncation
      return b.subarray(0, pick(b.length));
    case 4: {
      // extension with random tail
      const out = new Uint8Array(b.length + 1 + pick(512));
      out.set(b);
      for (let i = b.length; i < out.length; i++) out[i] = pick(256);
      return out;
    }
    case 5: // header fields: version, key type, TEE type
      dv.setUint16(0, [2, 3, 4, 5, 6, pick(0x10000)][pick(6)]!, true);
      dv.setUint16(2, [2, 3, pick(0x10000)][pick(3)]!, true);
      if (r() < 0.5) dv.setUint32(4, [0, 0x81, pick(0x100000000)][pick(3)]!, true);
      return b;
    case 6: {
      // random bytes behind a plausible header
      const out = new Uint8Array(48 + pick(6000));
      for (let i = 0; i < out.length; i++) out[i] = pick(256);
      out.set(b.subarray(0, 48));
      return out;
    }
    default: {
      // a byte block moved inside the quote
      const from = pick(b.length);
      const to = pick(b.length);
      const n = pick(64);
      b.copyWithin(to, from, from + n);
      return b;
    }
  }
}

export function mutateBytes(r: () => number, base: Uint8Array): Uint8Array {
  const pick = (n: number) => Math.floor(r() * n);
  const kind = pick(4);
  if (kind === 0) return base.subarray(0, pick(base.length));
  const b = Uint8Array.from(base);
  if (kind === 1) for (let k = 1 + pick(4); k > 0; k--) b[pick(b.length)] = pick(256);
  else if (kind === 2)
    b[pick(Math.min(b.length, 16))] = [0x80, 0x81, 0x82, 0x84, 0x88, 0xff, 0x00][pick(7)]!; // length octets near the top
  else {
    const i = pick(b.length);
    b[i] = b[i]! & 0x80 ? 0x80 : 0x84; // indefinite / oversized lengths anywhere
  }
  return b;
}
