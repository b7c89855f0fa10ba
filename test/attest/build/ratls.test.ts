/**
 * Our RA-TLS certificates: verified by our reader (dev root), laid out like Gramine's where
 * Gramine's verifier looks, and refused when anything that binds the key is altered.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { DevProvider } from "../../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../../proxy/attest/identity.js";
import { decodeCbor } from "../../../proxy/evidence/ratls/cbor.js";
import { pemBlocks } from "../../../proxy/evidence/asn1/pem.js";
import { checkBinding, readRaTls } from "../../../proxy/evidence/ratls/read.js";
import { buildClaims, buildRaTlsCertificate, legacyReportData, spkiOf, taggedEvidence, taggedReportData } from "../../../proxy/attest/build/ratls.js";
import { buildCertificate } from "../../../proxy/attest/build/x509.js";
import { verifyRaTlsCertificate, type RaTlsVerdict } from "../../../proxy/evidence/ratls/verify.js";
import { parseCertificate } from "../../../proxy/evidence/asn1/x509.js";
import { hex } from "../../support/der.js";
import { flipped } from "../../support/mutate.js";
import { VECTORS } from "../../support/vectors.js";
import { tempDir } from "../../support/wait.js";

const check = (v: RaTlsVerdict, name: string) => v.checks.find((c) => c.check === name);
const gramineDer = pemBlocks(readFileSync(join(VECTORS, "ratls/gramine-cert.pem"), "latin1"))[0]!;

let provider: DevProvider;
let minted: MintedIdentity;
before(async () => {
  provider = await DevProvider.open({ dir: join(tempDir("amcp-ratls-"), "dev"), mrenclave: new Uint8Array(32).fill(0x5a), warn: () => {} });
  minted = await mintIdentity({ provider });
});

describe("a certificate minted with the dev provider", () => {
  it("verifies with the dev root (dev: true) and fails pck.chain without it", async () => {
    const v = await verifyRaTlsCertificate(minted.certDer, { trustRoots: [provider.rootPem] });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.dev, true);
    assert.equal(v.binding?.ok, true);
    for (const n of ["binding.pubkey-hash", "binding.report-data", "binding.legacy-report-data", "binding.measurements", "quote.legacy"]) assert.equal(check(v, n)?.ok, true, n);
    const w = await verifyRaTlsCertificate(minted.certDer);
    assert.equal(w.ok, false);
    assert.equal(w.failed?.check, "pck.chain");
  });

  it("P-384 by default, 24 h lifetime with a small back-date; P-256 on request", async () => {
    assert.equal(minted.keyType, "P-384");
    const c = parseCertificate(minted.certDer);
    assert.equal(c.publicKey.algorithm === "EC" && c.publicKey.curve, "P-384");
    const life = c.notAfter.getTime() - c.notBefore.getTime();
    assert.ok(life > 24 * 3600_000 && life <= 24 * 3600_000 + 10 * 60_000, String(life));
    const small = await mintIdentity({ provider, keyType: "P-256", lifetimeMs: 3600_000 });
    const v = await verifyRaTlsCertificate(small.certDer, { trustRoots: [provider.rootPem] });
    assert.equal(v.ok, true);
    assert.equal(v.certificate?.key, "EC P-256");
  });
});

describe("layout compared with the real Gramine certificate", () => {
  const ours = () => parseCertificate(minted.certDer);
  const theirs = parseCertificate(gramineDer);

  it("the same extensions, OID elements byte for byte (the legacy OID as Gramine encodes it), same order and criticality", () => {
    const shape = (c: ReturnType<typeof parseCertificate>) => c.extensions.map((e) => `${hex(e.oidBytes)}:${e.critical}`);
    assert.deepEqual(shape(ours()), shape(theirs));
    assert.equal(hex(ours().extensions[3]!.oidBytes), "060b06092a864886f84d8a3906");
    // basicConstraints: the same empty SEQUENCE (CA:FALSE) Gramine writes.
    assert.equal(hex(ours().extensions[0]!.value), hex(theirs.extensions[0]!.value));
  });

  it("CBOR framing: tag 60000, a two-element array, a quote byte string with the same head size, the claims byte string byte-identical but for the hash", () => {
    const tcg = (c: ReturnType<typeof parseCertificate>) => c.extensions.find((e) => e.oid === "2.23.133.5.4.9")!.value;
    const a = tcg(ours());
    const b = tcg(theirs);
    assert.equal(hex(a.subarray(0, 5)), hex(b.subarray(0, 5))); // d9 ea 60 82 59
    const claims = (v: Uint8Array) => (decodeCbor(v) as { value: Uint8Array[] }).value[1]!;
    const ca = claims(a);
    const cb = claims(b);
    assert.equal(ca.length, cb.length);
    assert.equal(hex(ca.subarray(0, ca.length - 32)), hex(cb.subarray(0, cb.length - 32))); // a1 6b "pubkey-hash" 58 24 82 01 58 20
    assert.equal(hex(ca.subarray(0, 13)), "a16b7075626b65792d68617368");
  });

  it("the same report-data rules hold on both: the same binding checks pass", () => {
    const names = (der: Uint8Array) => checkBinding(readRaTls(parseCertificate(der))).map((c) => `${c.check}:${c.ok}`);
    assert.deepEqual(names(minted.certDer), names(gramineDer));
    assert.ok(names(minted.certDer).every((n) => n.endsWith(":true")));
  });

  it("the same key type (P-384)", () => {
    const curve = (c: ReturnType<typeof parseCertificate>) => (c.publicKey.algorithm === "EC" ? c.publicKey.curve : "");
    assert.equal(curve(ours()), curve(theirs));
  });
});

describe("altering what binds the key", () => {
  it("any byte of the key, of either extension, or of a claim flipped: refused with the check named", async () => {
    const cert = parseCertificate(minted.certDer);
    const at = (sub: Uint8Array) => sub.byteOffset - cert.der.byteOffset;
    const ev = readRaTls(cert);
    const pk = cert.publicKey.algorithm === "EC" ? cert.publicKey.point : new Uint8Array();
    const regions = [
      ["key", at(pk), pk.length],
      ["claims", at(ev.tagged!.claimsBytes), ev.tagged!.claimsBytes.length],
      ["legacy extension", at(cert.extensions[3]!.value), cert.extensions[3]!.value.length],
      ["TCG extension", at(cert.extensions[4]!.value), cert.extensions[4]!.value.length],
    ] as const;
    for (const [name, start, len] of regions) {
      for (let i = start; i < start + len; i++) {
        const v = await verifyRaTlsCertificate(flipped(minted.certDer, i), { trustRoots: [provider.rootPem] });
        assert.equal(v.ok, false, `${name} byte ${i - start} accepted`);
        assert.ok(v.failed?.check, `${name} byte ${i - start}: no check named`);
      }
    }
  });

  // Flipping bytes breaks the certificate's own signature first. An attacker re-signs: then the
  // binding checks are what refuse, and these cases prove each of them.
  const reSigned = async (mutate: (parts: { key: ReturnType<typeof generateKeyPairSync>["privateKey"]; claims: Uint8Array; taggedQuote: Uint8Array; legacyQuote: Uint8Array }) => void) => {
    const ev = readRaTls(parseCertificate(minted.certDer));
    const parts = { key: minted.key, claims: ev.tagged!.claimsBytes, taggedQuote: ev.tagged!.quote, legacyQuote: ev.legacy!.quote };
    mutate(parts);
    const der = buildRaTlsCertificate({ ...parts, notBefore: minted.notBefore, notAfter: minted.notAfter });
    return verifyRaTlsCertificate(der, { trustRoots: [provider.rootPem] });
  };

  it("the evidence moved onto another key (re-signed): binding.pubkey-hash and binding.legacy-report-data fail", async () => {
    const v = await reSigned((p) => (p.key = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey));
    assert.equal(check(v, "cert.signature")?.ok, true);
    assert.equal(check(v, "binding.pubkey-hash")?.ok, false);
    assert.equal(check(v, "binding.legacy-report-data")?.ok, false);
    assert.equal(v.failed?.check, "binding.pubkey-hash");
  });

  it("the pubkey-hash claim rewritten for another key (re-signed with it): binding.report-data fails", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
    const v = await reSigned((p) => {
      p.key = other;
      p.claims = buildClaims(spkiOf(other));
    });
    assert.equal(check(v, "binding.pubkey-hash")?.ok, true);
    assert.equal(check(v, "binding.report-data")?.ok, false);
  });

  it("an extra claim added (re-signed): binding.report-data fails", async () => {
    const v = await reSigned((p) => (p.claims = buildClaims(spkiOf(minted.key), { nonce: new Uint8Array(8) })));
    assert.equal(check(v, "binding.report-data")?.ok, false);
  });

  it("the legacy quote swapped for the tagged one (re-signed): binding.legacy-report-data fails", async () => {
    const v = await reSigned((p) => (p.legacyQuote = p.taggedQuote));
    assert.equal(check(v, "binding.legacy-report-data")?.ok, false);
  });

  it("a quote from another enclave over the right report data: binding.measurements fails", async () => {
    const otherEnclave = await DevProvider.open({ dir: provider.pki.dir, mrenclave: new Uint8Array(32).fill(0x77), warn: () => {} });
    const legacy = await otherEnclave.quote(legacyReportData(spkiOf(minted.key)));
    const v = await reSigned((p) => (p.legacyQuote = legacy));
    assert.equal(check(v, "binding.legacy-report-data")?.ok, true);
    assert.equal(check(v, "binding.measurements")?.ok, false);
    assert.match(check(v, "binding.measurements")?.detail ?? "", /mrenclave/);
  });

  it("an unknown critical extension is refused (cert.format, RATLS_CRITICAL_EXTENSION); a non-critical one is ignored", async () => {
    const ev = readRaTls(parseCertificate(minted.certDer));
    const build = (critical: boolean) =>
      buildCertificate({
        subject: [["CN", "attestable-mcp"]],
        notBefore: minted.notBefore,
        notAfter: minted.notAfter,
        publicKey: minted.key,
        signingKey: minted.key,
        extensions: [
          { oid: "2.23.133.5.4.9", value: taggedEvidence(ev.tagged!.quote, ev.tagged!.claimsBytes) },
          { oid: "1.3.6.1.4.1.99999.1", critical, value: Uint8Array.of(0x05, 0x00) },
        ],
      });
    const bad = await verifyRaTlsCertificate(build(true), { trustRoots: [provider.rootPem] });
    assert.equal(bad.failed?.check, "cert.format");
    assert.match(bad.failed?.reason ?? "", /RATLS_CRITICAL_EXTENSION.*1\.3\.6\.1\.4\.1\.99999\.1/);
    const fine = await verifyRaTlsCertificate(build(false), { trustRoots: [provider.rootPem] });
    assert.equal(fine.ok, true, JSON.stringify(fine.failed));
  });

  it("the claims' report data rule itself: taggedReportData is SHA-256(claims) ‖ 0³²", () => {
    const claims = buildClaims(spkiOf(minted.key));
    const rd = taggedReportData(claims);
    assert.equal(rd.length, 64);
    assert.ok(rd.subarray(32).every((b) => b === 0));
  });
});
