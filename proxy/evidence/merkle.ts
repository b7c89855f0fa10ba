/**
 * The Merkle tree of a batch of fresh-evidence requests (DESIGN.md §4): one quote covers many
 * requests, each request is a leaf, and each client checks that its own leaf reaches the root the
 * quote's claims carry. RFC 6962 hashing: a leaf is SHA-256(0x00 ‖ data), a node
 * SHA-256(0x01 ‖ left ‖ right), and a tree of n > 1 leaves splits at the largest power of two
 * below n, so no leaf can pass for a node and an odd leaf is never duplicated.
 *
 * Pure and bounded: a tree holds 1 to BATCH_MAX leaves, and a proof's path must have exactly the
 * length its index and size call for, neither a hash more nor less.
 */
import * as nodeCrypto from "node:crypto";
import { BATCH_MAX, CLAIM_NONCE, CLAIM_TLS_EXPORTER, type InclusionProof } from "../core/protocol.js";
import type { Result } from "../core/result.js";
import { equalBytes, toHex } from "../core/bytes.js";
import { encodeCbor } from "./ratls/cbor.js";

export const HASH_BYTES = 32;

/**
 * SHA-256 of one buffer. A client hashes a dozen small inputs per connection (its leaf, then one
 * node per level of its path): the one-shot digest (Node ≥ 20.12) skips building a Hash object
 * for each, which costs more than hashing 65 bytes.
 */
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: "buffer") => Buffer }).hash;
function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(oneShot ? oneShot("sha256", data, "buffer") : nodeCrypto.createHash("sha256").update(data).digest());
}

/** SHA-256(0x00 ‖ data). */
export function leafHash(data: Uint8Array): Uint8Array {
  const b = new Uint8Array(1 + data.length);
  b.set(data, 1);
  return sha256(b);
}

/** SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const b = new Uint8Array(1 + left.length + right.length);
  b[0] = 1;
  b.set(left, 1);
  b.set(right, 1 + left.length);
  return sha256(b);
}

const NONCE_KEY = encodeCbor(CLAIM_NONCE);
const EXPORTER_KEY = encodeCbor(CLAIM_TLS_EXPORTER);

/** CBOR head of a byte string of `n` bytes (n < 2^16: nonces and exporters are at most 64 bytes). */
function bstrHead(n: number): number[] {
  if (n < 24) return [0x40 | n];
  if (n < 0x100) return [0x58, n];
  if (n < 0x10000) return [0x59, n >> 8, n & 0xff];
  throw new RangeError(`a leaf input of ${n} bytes is not encoded here`);
}

/**
 * One request's leaf: SHA-256(0x00 ‖ CBOR {"nonce": bstr, "tls-exporter": bstr}), or without
 * "tls-exporter" for a nonce-only request. The two shapes differ in their first byte (a map of two
 * entries or of one), so a nonce-only leaf never equals an exporter-bound one. The CBOR is written
 * straight into the hashed buffer: the same bytes encodeCbor gives for that map (a test holds
 * them equal), without its intermediate parts, since both ends make one per connection.
 */
export function evidenceLeaf(nonce: Uint8Array, exporter: Uint8Array | null): Uint8Array {
  const nh = bstrHead(nonce.length);
  const xh = exporter ? bstrHead(exporter.length) : [];
  const size = 2 + NONCE_KEY.length + nh.length + nonce.length + (exporter ? EXPORTER_KEY.length + xh.length + exporter.length : 0);
  const b = new Uint8Array(size);
  let o = 1;
  const put = (x: ArrayLike<number>): void => {
    b.set(x, o);
    o += x.length;
  };
  put([exporter ? 0xa2 : 0xa1]);
  put(NONCE_KEY);
  put(nh);
  put(nonce);
  if (exporter) {
    put(EXPORTER_KEY);
    put(xh);
    put(exporter);
  }
  return sha256(b);
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > BATCH_MAX) throw new RangeError(`a batch tree holds 1 to ${BATCH_MAX} leaves, not ${size}`);
}

/**
 * Every level of the tree, leaves first. Pairing neighbours and carrying an unpaired last node up
 * unchanged gives exactly RFC 6962's tree (its left subtrees are always complete).
 */
function levels(leaves: readonly Uint8Array[]): Uint8Array[][] {
  checkSize(leaves.length);
  const out: Uint8Array[][] = [leaves.slice()];
  while (out[out.length - 1]!.length > 1) {
    const below = out[out.length - 1]!;
    const up: Uint8Array[] = [];
    for (let i = 0; i < below.length; i += 2) up.push(i + 1 < below.length ? nodeHash(below[i]!, below[i + 1]!) : below[i]!);
    out.push(up);
  }
  return out;
}

/** A batch's tree, built once: its root and each leaf's proof. `leaves` are leaf hashes. */
export class MerkleTree {
  private readonly levels: Uint8Array[][];
  constructor(leaves: readonly Uint8Array[]) {
    this.levels = levels(leaves);
  }
  get size(): number {
    return this.levels[0]!.length;
  }
  get root(): Uint8Array {
    return this.levels[this.levels.length - 1]![0]!;
  }
  /** The audit path of leaf `index`: its sibling at each level that has one, lowest first. */
  proof(index: number): InclusionProof {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size) throw new RangeError(`leaf ${index} is not in a tree of ${this.size}`);
    const path: Uint8Array[] = [];
    let i = index;
    for (const level of this.levels.slice(0, -1)) {
      const sibling = i ^ 1;
      if (sibling < level.length) path.push(level[sibling]!);
      i >>= 1;
    }
    return { index, size: this.size, path };
  }
}

export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  return new MerkleTree(leaves).root;
}

/** How many hashes the path of leaf `index` in a tree of `size` leaves has. */
export function pathLength(index: number, size: number): number {
  let n = 0;
  let m = index;
  let s = size;
  while (s > 1) {
    let k = 1;
    while (k * 2 < s) k *= 2;
    if (m < k) s = k;
    else {
      m -= k;
      s -= k;
    }
    n++;
  }
  return n;
}

/**
 * Whether `leaf` (a leaf hash) is leaf `proof.index` of a tree of `proof.size` leaves with `root`.
 * The reason of a failure says which bound or hash did not hold.
 */
export function verifyInclusion(leaf: Uint8Array, proof: InclusionProof, root: Uint8Array): Result<true> {
  const { index, size, path } = proof;
  if (!Number.isSafeInteger(size) || size < 1 || size > BATCH_MAX) return { ok: false, reason: `batch size ${size} is outside 1 to ${BATCH_MAX}` };
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) return { ok: false, reason: `leaf index ${index} is outside a batch of ${size}` };
  const want = pathLength(index, size);
  if (path.length !== want)
    return { ok: false, reason: `the path has ${path.length} hashes, leaf ${index} of ${size} needs exactly ${want}${path.length < want ? " (truncated)" : " (extra hashes)"}` };
  if (leaf.length !== HASH_BYTES || root.length !== HASH_BYTES || path.some((h) => h.length !== HASH_BYTES)) return { ok: false, reason: `every hash must be ${HASH_BYTES} bytes` };
  // RFC 9162 §2.1.3.2: walk up from the leaf, the index's bits saying on which side each sibling is.
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return { ok: false, reason: `the path is longer than leaf ${index} of ${size} needs` };
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else r = nodeHash(r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0 || !equalBytes(r, root)) return { ok: false, reason: `leaf ${toHex(leaf)} at index ${index} of ${size} leads to ${toHex(r)}, not to the root ${toHex(root)}` };
  return { ok: true, value: true };
}
