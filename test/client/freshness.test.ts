/**
 * Fresh evidence as the connector judges it: made for this connection it passes, alone or in a
 * batch; relayed, replayed or copied (another exporter, another nonce, another connection's
 * proof, a tampered proof, another key, a quote over other claims, another certificate, another
 * enclave or root) it fails with the check named. And the on-socket reader
 * takes only a response it can consume exactly.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { createServer, connect, type TLSSocket, type Server } from "node:tls";
import { after, before, describe, it } from "node:test";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { checkFreshEvidence, freshness, MAX_EVIDENCE_BYTES, type EvidenceResponse, type FreshnessExpectation } from "../../proxy/client/freshness.js";
import { buildClaims, spkiOfCertificate, taggedReportData } from "../../proxy/attest/build/ratls.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { PUBKEY_HASH_SHA256 } from "../../proxy/evidence/ratls/read.js";
import { encodeCbor, type CborValue } from "../../proxy/evidence/ratls/cbor.js";
import { CLAIM_BATCH_ROOT, CLAIM_BATCH_SIZE, encodeEvidence, type InclusionProof } from "../../proxy/core/protocol.js";
import { evidenceLeaf, MerkleTree, merkleRoot } from "../../proxy/evidence/merkle.js";
import { derToPem } from "../../proxy/attest/build/x509.js";
import { tempDir, within } from "../support/wait.js";

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

/** Claims as buildClaims lays them out, with any hash in pubkey-hash. */
function claimsWithHash(hash: Uint8Array, extra: Record<string, CborValue>): Uint8Array {
  return encodeCbor(new Map<CborValue, CborValue>([["pubkey-hash", encodeCbor([PUBKEY_HASH_SHA256, hash])], ...Object.entries(extra)]));
}

describe("fresh evidence checks", { timeout: 30_000 }, () => {
  let provider: DevProvider;
  let id: MintedIdentity;
  let other: MintedIdentity;
  let exp: FreshnessExpectation;

  before(async () => {
    const dir = join(tempDir("amcp-fresh-"), "dev");
    provider = await DevProvider.open({ dir, mrenclave: new Uint8Array(32).fill(0x11), warn: () => {} });
    id = await mintIdentity({ provider });
    other = await mintIdentity({ provider });
    const v = await verifyRaTlsCertificate(id.certDer, { trustRoots: [provider.rootPem] });
    assert.equal(v.ok, true);
    exp = { mode: "exporter", nonce: bytes(32), exporter: bytes(32), peerCertDer: id.certDer, certQuote: v.quote, certPlatform: v.platform, certDev: v.dev, trustRoots: [provider.rootPem] };
  });

  interface Parts {
    claimsFor?: Uint8Array;
    nonce?: Uint8Array;
    exporter?: Uint8Array | null;
    quoteOver?: Uint8Array;
    certificate?: Uint8Array;
    by?: DevProvider;
    /** The pubkey-hash claim's hash, as given (default: the key's own SHA-256). */
    pubkeyHash?: Uint8Array;
    /** The batch's size and this request's place in it (default: 5, index 2); the others are strangers' leaves. */
    size?: number;
    index?: number;
    /** The proof sent, from the true one. */
    proof?: (p: InclusionProof, tree: MerkleTree) => InclusionProof;
    /** The claims' batch-root and batch-size (null: left out; default: the tree's). */
    root?: Uint8Array | null;
    claimedSize?: number | null;
  }
  /** A response body as the endpoint makes it, each part replaceable. */
  async function body(p: Parts = {}): Promise<EvidenceResponse> {
    const ex = p.exporter === undefined ? exp.exporter : p.exporter;
    const size = p.size ?? 5;
    const index = p.index ?? 2;
    const leaves = Array.from({ length: size }, (_, i) => (i === index ? evidenceLeaf(p.nonce ?? exp.nonce, ex) : evidenceLeaf(bytes(32), bytes(32))));
    const tree = new MerkleTree(leaves);
    const extra: Record<string, CborValue> = {};
    if (p.root !== null) extra[CLAIM_BATCH_ROOT] = p.root ?? tree.root;
    if (p.claimedSize !== null) extra[CLAIM_BATCH_SIZE] = p.claimedSize ?? tree.size;
    const claims = p.pubkeyHash ? claimsWithHash(p.pubkeyHash, extra) : buildClaims(spkiOfCertificate(p.claimsFor ?? id.certDer), extra);
    const quote = await (p.by ?? provider).quote(taggedReportData(p.quoteOver ?? claims));
    const proof = (p.proof ?? ((x) => x))(tree.proof(index), tree);
    const text = encodeEvidence({ quote, claims, certificateSha256: sha256(p.certificate ?? id.certDer), proof, dev: true });
    return { status: 200, body: Buffer.from(text) };
  }

  it("evidence made for this connection passes every check, in a batch of one and of many", async () => {
    for (const [size, index] of [
      [1, 0],
      [5, 2],
      [1000, 999],
    ] as const) {
      const out = await checkFreshEvidence(await body({ size, index }), exp);
      assert.deepEqual(
        out.checks.map((c) => [c.check, c.ok]),
        [
          ["freshness.response", true],
          ["freshness.certificate", true],
          ["freshness.claims", true],
          ["freshness.proof", true],
          ["freshness.report-data", true],
          ["freshness.quote", true],
        ],
        `batch of ${size}`,
      );
      assert.equal(out.result.ok, true);
      assert.equal(out.result.mode, "exporter");
      assert.equal(out.result.nonce, Buffer.from(exp.nonce).toString("hex"));
    }
  });

  it("nonce mode checks a leaf over the nonce alone", async () => {
    const out = await checkFreshEvidence(await body({ exporter: null }), { ...exp, mode: "nonce", exporter: null });
    assert.equal(out.result.ok, true, out.result.detail);
    const withExporter = await checkFreshEvidence(await body(), { ...exp, mode: "nonce", exporter: null });
    assert.match(withExporter.result.detail, /^freshness\.proof: /);
  });

  const cases: { name: string; parts: () => Parts | Promise<Parts>; check: string; reason: RegExp }[] = [
    { name: "a leaf with another connection's exporter (relayed)", parts: () => ({ exporter: bytes(32) }), check: "freshness.proof", reason: /not in the quoted batch .*not to the root/ },
    { name: "a leaf without an exporter", parts: () => ({ exporter: null }), check: "freshness.proof", reason: /not to the root/ },
    { name: "a leaf with another nonce (replayed)", parts: () => ({ nonce: bytes(32) }), check: "freshness.proof", reason: /not to the root/ },
    {
      name: "the evidence another connection of the same batch got (copied)",
      parts: () => ({ proof: (_p, tree) => tree.proof(3) }),
      check: "freshness.proof",
      reason: /at index 3 of 5 leads to .*not to the root/,
    },
    { name: "a wrong index", parts: () => ({ proof: (p) => ({ ...p, index: 1 }) }), check: "freshness.proof", reason: /not to the root/ },
    { name: "an index outside the batch", parts: () => ({ proof: (p) => ({ ...p, index: 5 }) }), check: "freshness.proof", reason: /leaf index 5 is outside a batch of 5/ },
    { name: "a truncated path", parts: () => ({ proof: (p) => ({ ...p, path: p.path.slice(0, -1) }) }), check: "freshness.proof", reason: /\(truncated\)/ },
    { name: "an extra path element", parts: () => ({ proof: (p) => ({ ...p, path: [...p.path, bytes(32)] }) }), check: "freshness.proof", reason: /\(extra hashes\)/ },
    { name: "a proof whose size is not the claims'", parts: () => ({ proof: (p) => ({ ...p, size: 6 }) }), check: "freshness.proof", reason: /the proof is for a batch of 6, the claims say 5/ },
    { name: "claims of another batch's root", parts: () => ({ root: merkleRoot([evidenceLeaf(bytes(32), null)]) }), check: "freshness.proof", reason: /not to the root/ },
    { name: "claims without a batch-root", parts: () => ({ root: null }), check: "freshness.claims", reason: /batch-root is missing/ },
    { name: "claims without a batch-size", parts: () => ({ claimedSize: null }), check: "freshness.claims", reason: /batch-size is missing/ },
    {
      name: "claims with another key's pubkey-hash",
      parts: () => ({ claimsFor: other.certDer }),
      check: "freshness.claims",
      reason: /pubkey-hash .* is not SHA-256 of this connection's certificate key/,
    },
    {
      name: "a quote whose report data is over other claims (the batch root not in the report data)",
      parts: () => ({ quoteOver: buildClaims(spkiOfCertificate(id.certDer), { [CLAIM_BATCH_ROOT]: bytes(32), [CLAIM_BATCH_SIZE]: 5 }) }),
      check: "freshness.report-data",
      reason: /is not SHA-256\(claims\)/,
    },
    {
      name: "a certificate that differs from the peer's",
      parts: () => ({ certificate: other.certDer, claimsFor: other.certDer }),
      check: "freshness.certificate",
      reason: /the evidence is for certificate [0-9a-f]{64}, this connection's is/,
    },
    {
      name: "a quote from another enclave",
      parts: async () => ({ by: await DevProvider.open({ dir: provider.pki.dir, mrenclave: new Uint8Array(32).fill(0x22), warn: () => {} }) }),
      check: "freshness.quote",
      reason: /not the certificate's enclave: mrenclave 2222/,
    },
    {
      name: "a quote under a root the policy does not trust",
      parts: async () => ({ by: await DevProvider.open({ dir: join(tempDir("amcp-fresh-other-"), "dev"), mrenclave: new Uint8Array(32).fill(0x11), warn: () => {} }) }),
      check: "freshness.quote",
      reason: /fails pck\.chain/,
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.name} at ${c.check}`, async () => {
      const out = await checkFreshEvidence(await body(await c.parts()), exp);
      assert.equal(out.result.ok, false);
      const failed = out.checks.filter((k) => !k.ok);
      assert.equal(failed.length, 1);
      assert.equal(failed[0]!.check, c.check);
      assert.match(failed[0]!.detail, c.reason);
      assert.ok(out.result.detail.startsWith(`${c.check}: `), out.result.detail);
    });
  }

  it("the key's own hash in a pubkey-hash of the form the certificate uses passes; 31 or 33 bytes of it do not", async () => {
    const own = sha256(spkiOfCertificate(id.certDer));
    assert.equal((await checkFreshEvidence(await body({ pubkeyHash: own }), exp)).result.ok, true);
    for (const h of [own.subarray(0, 31), Uint8Array.from([...own, 0])]) {
      const out = await checkFreshEvidence(await body({ pubkeyHash: h }), exp);
      assert.equal(out.result.ok, false, `${h.length} bytes accepted`);
      const failed = out.checks.filter((k) => !k.ok);
      assert.deepEqual(
        failed.map((k) => k.check),
        ["freshness.claims"],
      );
      assert.match(failed[0]!.detail, /pubkey-hash \(missing or malformed\) is not SHA-256 of this connection's certificate key/);
    }
  });

  it("the key's hash as the appraisal read it is used when given, not read from the certificate again", async () => {
    const out = await checkFreshEvidence(await body(), { ...exp, spkiSha256: sha256(spkiOfCertificate(other.certDer)) });
    assert.equal(out.result.ok, false);
    assert.match(out.result.detail, /^freshness\.claims: pubkey-hash [0-9a-f]{64} is not SHA-256/);
  });

  it("the certificate's hash as the connector took it is used when given, not computed again", async () => {
    const out = await checkFreshEvidence(await body(), { ...exp, peerCertSha256: sha256(other.certDer) });
    assert.equal(out.result.ok, false);
    assert.match(out.result.detail, /^freshness\.certificate: the evidence is for certificate [0-9a-f]{64}, this connection's is/);
  });

  it("rejects a non-200 answer and a body that is not the evidence at freshness.response", async () => {
    const good = JSON.parse((await body()).body.toString()) as Record<string, unknown>;
    const { certificateSha256, ...unnamed } = good;
    assert.match(String(certificateSha256), /^[0-9a-f]{64}$/);
    const json = (o: unknown) => ({ status: 200, body: Buffer.from(JSON.stringify(o)) });
    for (const res of [
      { status: 429, body: Buffer.from('{"error":"rate-limited"}') },
      { status: 200, body: Buffer.from("not json") },
      { status: 200, body: Buffer.from('{"quote":"AAAA"}') },
      // The certificate named by anything but 64 lowercase hex digits, or not named at all (a PEM instead).
      json({ ...good, certificateSha256: "ab".repeat(31) }),
      json({ ...good, certificateSha256: "AB".repeat(32) }),
      json({ ...unnamed, certificate: derToPem(id.certDer) }),
      // A quote that is not canonical padded base64: a foreign character, no padding, stray low bits.
      json({ ...good, quote: `${String(good.quote).slice(0, -4)}AA*=` }),
      json({ ...good, quote: "AAA" }),
      json({ ...good, claims: "AB==" }),
    ]) {
      const out = await checkFreshEvidence(res, exp);
      assert.deepEqual(
        out.checks.map((c) => [c.check, c.ok]),
        [["freshness.response", false]],
        res.body.toString(),
      );
    }
  });
});

describe("the on-socket evidence exchange", { timeout: 30_000 }, () => {
  let provider: DevProvider;
  let id: MintedIdentity;
  let server: Server;
  let reply: (req: string, socket: TLSSocket) => void = () => {};
  const requests: string[] = [];

  before(async () => {
    provider = await DevProvider.open({ dir: join(tempDir("amcp-wire-"), "dev"), warn: () => {} });
    id = await mintIdentity({ provider });
    server = createServer({ key: id.keyPem, cert: id.certPem }, (socket) => {
      let text = "";
      socket.on("data", (d: Buffer) => {
        text += d.toString("latin1");
        if (text.includes("\r\n\r\n")) {
          requests.push(text);
          reply(text, socket);
          text = "";
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  async function exchange(mode: "nonce" | "exporter"): Promise<{ out: Awaited<ReturnType<typeof freshness>>; socket: TLSSocket }> {
    const port = (server.address() as { port: number }).port;
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => resolve(s));
      s.once("error", reject);
    });
    const v = await verifyRaTlsCertificate(id.certDer, { trustRoots: [provider.rootPem] });
    const out = await within(
      freshness(socket, `127.0.0.1:${port}`, mode, { peerCertDer: id.certDer, certQuote: v.quote, certPlatform: v.platform, certDev: v.dev, trustRoots: [provider.rootPem] }),
      5000,
      "freshness exchange",
    );
    return { out, socket };
  }

  const answer = (socket: TLSSocket, head: string, body: string): void => void socket.write(`HTTP/1.1 200 OK\r\n${head}\r\n\r\n${body}`);

  it("writes GET ?nonce for nonce mode and POST {nonce} for exporter mode", async () => {
    reply = (_, socket) => answer(socket, "Content-Length: 2", "{}");
    requests.length = 0;
    (await exchange("nonce")).socket.destroy();
    assert.match(requests[0]!, /^GET \/\.well-known\/attestation\?nonce=[0-9a-f]{64} HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    (await exchange("exporter")).socket.destroy();
    assert.match(requests[1]!, /^POST \/\.well-known\/attestation HTTP\/1\.1\r\n[\s\S]*Content-Length: 76\r\n\r\n\{"nonce":"[0-9a-f]{64}"\}$/);
  });

  const refusals: { name: string; send: (socket: TLSSocket) => void; reason: RegExp }[] = [
    { name: "chunked", send: (s) => answer(s, "Transfer-Encoding: chunked", "2\r\n{}\r\n0\r\n\r\n"), reason: /Transfer-Encoding chunked/ },
    { name: "no Content-Length", send: (s) => answer(s, "Content-Type: application/json", "{}"), reason: /exactly one numeric Content-Length/ },
    { name: "two Content-Lengths", send: (s) => answer(s, "Content-Length: 2\r\nContent-Length: 2", "{}"), reason: /exactly one numeric Content-Length/ },
    { name: "over the size limit", send: (s) => answer(s, `Content-Length: ${MAX_EVIDENCE_BYTES + 1}`, ""), reason: /over 65536 bytes/ },
    { name: "Connection: close", send: (s) => answer(s, "Content-Length: 2\r\nConnection: close", "{}"), reason: /Connection: close/ },
    { name: "bytes beyond the response", send: (s) => answer(s, "Content-Length: 2", "{}HTTP/1.1 200 OK\r\n"), reason: /bytes beyond the response's Content-Length 2/ },
    { name: "a closed connection", send: (s) => void s.end("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"), reason: /closed the connection after 2 of 10 body bytes/ },
    { name: "HTTP/1.0", send: (s) => void s.write("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"), reason: /not an HTTP\/1\.1 status line/ },
  ];
  for (const r of refusals) {
    it(`refuses a response that is ${r.name} (freshness.response)`, async () => {
      reply = (_, socket) => r.send(socket);
      const { out, socket } = await exchange("exporter");
      socket.destroy();
      assert.deepEqual(
        out.checks.map((c) => [c.check, c.ok]),
        [["freshness.response", false]],
      );
      assert.match(out.checks[0]!.detail, r.reason);
    });
  }

  it("a response split across writes is read exactly, and the socket is left clean for the next reader", async () => {
    reply = (_, socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Le");
      setTimeout(() => socket.write("ngth: 2\r\n\r\n{"), 20);
      setTimeout(() => socket.write("}"), 40);
      setTimeout(() => socket.write("NEXT"), 200);
    };
    const { out, socket } = await exchange("nonce");
    assert.equal(out.checks[0]!.check, "freshness.response");
    // "{}" is an answer without evidence fields: judged, not a wire failure.
    assert.match(out.checks[0]!.detail, /needs quote/);
    assert.equal(socket.listenerCount("readable"), 0);
    assert.equal(socket.listenerCount("data"), 0);
    const next = await within(new Promise<string>((r) => socket.once("data", (d: Buffer) => r(d.toString()))), 2000, "next bytes");
    assert.equal(next, "NEXT");
    socket.destroy();
  });
});
