/**
 * The batch tree against RFC 6962's definition, written out here the straightforward recursive
 * way (MTH and PATH of RFC 6962 §2.1), for every size 1..8 and some larger ones; then every way
 * to tamper with a proof, each refused with its reason.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { BATCH_MAX, CLAIM_NONCE, CLAIM_TLS_EXPORTER } from "../../proxy/core/protocol.js";
import { encodeCbor, type CborValue } from "../../proxy/evidence/ratls/cbor.js";
import { evidenceLeaf, leafHash, MerkleTree, merkleRoot, pathLength, verifyInclusion } from "../../proxy/evidence/merkle.js";

const h = (...parts: Uint8Array[]): Uint8Array => {
  const x = createHash("sha256");
  for (const p of parts) x.update(p);
  return new Uint8Array(x.digest());
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The largest power of two smaller than n (n > 1). */
const split = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};
/** RFC 6962 MTH over the data items themselves. */
function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 1) return h(Uint8Array.of(0), d[0]!);
  const k = split(d.length);
  return h(Uint8Array.of(1), mth(d.slice(0, k)), mth(d.slice(k)));
}
/** RFC 6962 PATH(m, D[n]). */
function auditPath(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length === 1) return [];
  const k = split(d.length);
  return m < k ? [...auditPath(m, d.slice(0, k)), mth(d.slice(k))] : [...auditPath(m - k, d.slice(k)), mth(d.slice(0, k))];
}

/** RFC 6962's test inputs (the certificate-transparency test vectors' leaf data). */
const DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map((x) => new Uint8Array(Buffer.from(x, "hex")));
/** The roots of the first n of those, as published with them (n = 1..8). */
const KNOWN_ROOTS = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

describe("batch Merkle tree (RFC 6962)", () => {
  it("roots for sizes 1..8 match the published vectors and the recursive definition", () => {
    for (let n = 1; n <= 8; n++) {
      const d = DATA.slice(0, n);
      const root = merkleRoot(d.map(leafHash));
      assert.equal(hex(root), KNOWN_ROOTS[n - 1], `size ${n}`);
      assert.equal(hex(root), hex(mth(d)), `size ${n}`);
    }
  });

  it("every proof of every leaf, sizes 1..33 and 1000, is RFC 6962's audit path and verifies", () => {
    for (const n of [...Array.from({ length: 33 }, (_, i) => i + 1), 1000]) {
      const d = Array.from({ length: n }, (_, i) => Uint8Array.of(i & 0xff, i >> 8));
      const tree = new MerkleTree(d.map(leafHash));
      assert.equal(hex(tree.root), hex(mth(d)), `root of ${n}`);
      // The recursive definition costs O(n) per path: for the large tree, its edges and middle only.
      const spotted = n <= 33 ? null : new Set([0, 1, 2, 499, 511, 512, 513, 767, 998, n - 1]);
      for (let m = 0; m < n; m++) {
        const p = tree.proof(m);
        if (!spotted || spotted.has(m)) assert.deepEqual(p.path.map(hex), auditPath(m, d).map(hex), `path ${m} of ${n}`);
        assert.equal(p.path.length, pathLength(m, n));
        assert.deepEqual(verifyInclusion(leafHash(d[m]!), p, tree.root), { ok: true, value: true }, `leaf ${m} of ${n}`);
      }
    }
  });

  it("a request's leaf is SHA-256(0x00 ‖ CBOR {nonce, tls-exporter}), or {nonce} alone", () => {
    const nonce = new Uint8Array(32).fill(7);
    const exporter = new Uint8Array(32).fill(9);
    const both = encodeCbor(
      new Map<CborValue, CborValue>([
        [CLAIM_NONCE, nonce],
        [CLAIM_TLS_EXPORTER, exporter],
      ]),
    );
    assert.equal(hex(evidenceLeaf(nonce, exporter)), hex(h(Uint8Array.of(0), both)));
    assert.equal(hex(evidenceLeaf(nonce, null)), hex(h(Uint8Array.of(0), encodeCbor(new Map<CborValue, CborValue>([[CLAIM_NONCE, nonce]])))));
    assert.notEqual(hex(evidenceLeaf(nonce, null)), hex(evidenceLeaf(nonce, exporter)));
    // Every nonce length a server accepts (1 to 64 bytes) across the CBOR head sizes.
    for (const n of [1, 23, 24, 33, 64]) {
      const x = new Uint8Array(n).fill(n);
      const m = new Map<CborValue, CborValue>([[CLAIM_NONCE, x]]);
      assert.equal(hex(evidenceLeaf(x, null)), hex(h(Uint8Array.of(0), encodeCbor(m))), `nonce of ${n} bytes`);
      m.set(CLAIM_TLS_EXPORTER, exporter);
      assert.equal(hex(evidenceLeaf(x, exporter)), hex(h(Uint8Array.of(0), encodeCbor(m))), `nonce of ${n} bytes with an exporter`);
    }
  });

  it("trees are 1 to BATCH_MAX leaves", () => {
    assert.throws(() => new MerkleTree([]), RangeError);
    assert.throws(() => new MerkleTree(Array.from({ length: BATCH_MAX + 1 }, () => new Uint8Array(32))), RangeError);
    assert.equal(new MerkleTree(Array.from({ length: BATCH_MAX }, (_, i) => leafHash(Uint8Array.of(i & 0xff, i >> 8)))).size, BATCH_MAX);
    assert.throws(() => new MerkleTree([new Uint8Array(32)]).proof(1), RangeError);
  });

  describe("tampered proofs", () => {
    const d = Array.from({ length: 7 }, (_, i) => Uint8Array.of(i));
    const tree = new MerkleTree(d.map(leafHash));
    const leaf = leafHash(d[5]!);
    const good = tree.proof(5);
    const cases: { name: string; leaf?: Uint8Array; proof: typeof good; root?: Uint8Array; reason: RegExp }[] = [
      { name: "a proof for another leaf", leaf, proof: tree.proof(4), reason: /leads to [0-9a-f]{64}, not to the root/ },
      { name: "another leaf with this proof", leaf: leafHash(d[4]!), proof: good, reason: /not to the root/ },
      { name: "a wrong index of the same length", leaf, proof: { ...good, index: 4 }, reason: /not to the root/ },
      { name: "an index outside the batch", leaf, proof: { ...good, index: 7 }, reason: /leaf index 7 is outside a batch of 7/ },
      { name: "a negative index", leaf, proof: { ...good, index: -1 }, reason: /leaf index -1 is outside/ },
      { name: "a truncated path", leaf, proof: { ...good, path: good.path.slice(0, -1) }, reason: /needs exactly 3 \(truncated\)/ },
      { name: "an extra path element", leaf, proof: { ...good, path: [...good.path, new Uint8Array(32)] }, reason: /needs exactly 3 \(extra hashes\)/ },
      { name: "a size whose path length differs", leaf, proof: { ...good, size: 6 }, reason: /needs exactly 2/ },
      { name: "a size over the batch bound", leaf, proof: { ...good, size: BATCH_MAX + 1 }, reason: /outside 1 to 1024/ },
      { name: "size 0", leaf, proof: { ...good, size: 0 }, reason: /outside 1 to 1024/ },
      { name: "a flipped sibling hash", leaf, proof: { ...good, path: good.path.map((p, i) => (i === 1 ? p.map((b, j) => (j === 0 ? b ^ 1 : b)) : p)) }, reason: /not to the root/ },
      { name: "a short hash in the path", leaf, proof: { ...good, path: [good.path[0]!.subarray(0, 31), ...good.path.slice(1)] }, reason: /every hash must be 32 bytes/ },
      { name: "another root", leaf, proof: good, root: merkleRoot(d.slice(0, 6).map(leafHash)), reason: /not to the root/ },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}`, () => {
        const r = verifyInclusion(c.leaf ?? leaf, c.proof, c.root ?? tree.root);
        assert.equal(r.ok, false);
        assert.match((r as { reason: string }).reason, c.reason);
      });
    }
    it("the untampered proof verifies", () => assert.equal(verifyInclusion(leaf, good, tree.root).ok, true));
  });
});
