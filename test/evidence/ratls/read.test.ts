/**
 * Reading real RA-TLS certificates (Gramine, Intel SGX SDK, rats-tls) and refusing altered ones.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pckCertificates } from "../../../proxy/evidence/dcap/quote-checks.js";
import { pemBlocks } from "../../../proxy/evidence/asn1/pem.js";
import { parseQuote } from "../../../proxy/evidence/dcap/quote.js";
import { checkBinding, claimedPubkeyHash, PUBKEY_HASH_SHA256, readRaTls } from "../../../proxy/evidence/ratls/read.js";
import { encodeCbor, type CborValue } from "../../../proxy/evidence/ratls/cbor.js";
import { verifyRaTlsCertificate, type RaTlsVerdict } from "../../../proxy/evidence/ratls/verify.js";
import { parseCertificate } from "../../../proxy/evidence/asn1/x509.js";
import { flipped } from "../../support/mutate.js";
import { VECTORS } from "../../support/vectors.js";

interface ExpectedCert {
  path: string;
  keyType?: string;
  mrenclave: string;
  mrsigner?: string;
  debug: boolean;
  keyBinding: string;
}
const expectedCerts = (JSON.parse(readFileSync(join(VECTORS, "expected.json"), "utf8")) as { raTlsCertificates: ExpectedCert[] }).raTlsCertificates;

const der = (path: string) => pemBlocks(readFileSync(join(VECTORS, path), "latin1"))[0]!;

/** A time inside the certificate's window and after its PCK leaf was issued. */
function timeFor(d: Uint8Array): Date {
  const cert = parseCertificate(d);
  const ev = readRaTls(cert);
  const certs = pckCertificates(parseQuote(ev.tagged?.quote ?? ev.legacy!.quote));
  assert.ok(certs.ok);
  const t = Math.max(cert.notBefore.getTime(), ...certs.value.map((c) => c.notBefore.getTime())) + 3_600_000;
  assert.ok(t < cert.notAfter.getTime());
  return new Date(Math.min(t, cert.notAfter.getTime() - 60_000));
}

const check = (v: RaTlsVerdict, name: string) => v.checks.find((c) => c.check === name);

describe("real RA-TLS certificates", () => {
  for (const e of expectedCerts) {
    it(`${e.path}: binding ok, quotes verify, measurements as expected.json, debug reported`, async () => {
      const d = der(e.path);
      const v = await verifyRaTlsCertificate(d, { at: timeFor(d) });
      assert.equal(v.ok, true, JSON.stringify(v.failed));
      assert.equal(v.binding?.ok, true);
      assert.equal(v.quote?.teeType, "SGX");
      if (v.quote?.teeType !== "SGX") return;
      assert.equal(v.quote.mrenclave, e.mrenclave);
      if (e.mrsigner) assert.equal(v.quote.mrsigner, e.mrsigner);
      assert.equal(v.quote.debug, e.debug);
      if (e.keyType) assert.equal(v.certificate?.key, e.keyType.replace("EC ", "EC "));
      for (const name of ["cert.signature", "binding.pubkey-hash", "binding.report-data", "quote.signature", "qe.binding", "pck.chain", "qe.signature"]) {
        assert.equal(check(v, name)?.ok, true, name);
      }
      assert.ok(v.binding, "the binding was read");
      assert.equal(v.binding.spkiSha256, (v.binding.claims["pubkey-hash"] as [number, string])[1]);
    });
  }

  it("gramine: both extensions found, the legacy one by its raw OID bytes; both quotes bound and alike", async () => {
    const d = der("ratls/gramine-cert.pem");
    const v = await verifyRaTlsCertificate(d, { at: timeFor(d) });
    assert.deepEqual(
      v.certificate?.extensions.map((x) => x.kind),
      ["x509", "x509", "x509", "gramine-legacy-quote", "tcg-tagged-evidence"],
    );
    for (const name of ["binding.legacy-report-data", "binding.measurements", "quote.legacy"]) assert.equal(check(v, name)?.ok, true, name);
  });

  it("intel SGX SDK: its second quote under 1.2.840.113741.1.13.1 is the claims-bound one and verifies", async () => {
    const d = der("ratls/intel-sgxsdk-cert.pem");
    const v = await verifyRaTlsCertificate(d, { at: timeFor(d) });
    for (const name of ["binding.sdk-report-data", "binding.measurements", "quote.sdk"]) assert.equal(check(v, name)?.ok, true, name);
  });

  it("rats-tls: extra claims are kept and shown", async () => {
    const d = der("ratls/rats-tls-cert.pem");
    const v = await verifyRaTlsCertificate(d, { at: timeFor(d) });
    assert.deepEqual(Object.keys(v.binding?.claims ?? {}), ["pubkey-hash", "key_0", "key_1"]);
    assert.equal(v.binding?.claims.key_0, Buffer.from("value_0\0").toString("hex"));
  });

  it("outside the certificate's window: cert.validity fails", async () => {
    const v = await verifyRaTlsCertificate(der("ratls/rats-tls-cert.pem"), { at: new Date("2024-06-01T00:00:00Z") });
    assert.equal(check(v, "cert.validity")?.ok, false);
    assert.equal(v.ok, false);
  });

  it("a certificate without evidence, and garbage, fail cert.format", async () => {
    const leaf = pemBlocks(readFileSync(join(VECTORS, "sgx/phala/collateral/tcb-info-issuer-chain.pem"), "latin1"))[0]!;
    const v = await verifyRaTlsCertificate(leaf);
    assert.equal(v.failed?.check, "cert.format");
    assert.match(v.failed?.reason ?? "", /RATLS_NO_EVIDENCE/);
    assert.equal((await verifyRaTlsCertificate(new Uint8Array([0x30, 0x03, 1, 2, 3]))).failed?.check, "cert.format");
  });
});

describe("altering a real certificate", () => {
  const d = der("ratls/gramine-cert.pem");
  const cert = parseCertificate(d);
  const at = timeFor(d);
  const offsetOf = (sub: Uint8Array) => sub.byteOffset - cert.der.byteOffset;
  const ev = readRaTls(cert);
  const tcg = cert.extensions.find((e) => e.oid === "2.23.133.5.4.9")!;
  const legacy = cert.extensions.find((e) => e.oidBytes.length === 13 && e.oidBytes[1] === 0x0b)!;
  const pk = cert.publicKey.algorithm === "EC" ? cert.publicKey.point : new Uint8Array();
  const claims = ev.tagged!.claimsBytes;

  const regions: [string, number, number, RegExp][] = [
    ["public key", offsetOf(pk), offsetOf(pk) + pk.length, /^(cert\.|binding\.)/],
    ["claims", offsetOf(claims), offsetOf(claims) + claims.length, /^(cert\.|binding\.)/],
    ["TCG extension", offsetOf(tcg.value), offsetOf(tcg.value) + tcg.value.length, /./],
    ["legacy extension", offsetOf(legacy.value), offsetOf(legacy.value) + legacy.value.length, /./],
  ];
  for (const [name, start, end, firstCheck] of regions) {
    it(`every byte of the ${name} (${end - start} bytes): the verdict fails, the check named`, async () => {
      for (let i = start; i < end; i++) {
        const v = await verifyRaTlsCertificate(flipped(d, i), { at });
        assert.equal(v.ok, false, `${name} byte ${i - start} accepted`);
        assert.match(v.failed?.check ?? "", firstCheck, `${name} byte ${i - start}: ${v.failed?.check}`);
        // Beyond the certificate's own signature, something that binds or verifies the evidence breaks.
        if (name === "public key" || name === "claims") {
          assert.ok(v.checks.some((c) => !c.ok && c.check.startsWith("binding.")) || v.failed?.check === "cert.format", `${name} byte ${i - start}: no binding check failed`);
        }
      }
    });
  }
});

describe("the pubkey-hash claim", () => {
  const d = der("ratls/gramine-cert.pem");
  const ev = readRaTls(parseCertificate(d));
  const claimsWith = (ph: CborValue | undefined): Map<CborValue, CborValue> => {
    const m = new Map(ev.tagged!.claims);
    if (ph === undefined) m.delete("pubkey-hash");
    else m.set("pubkey-hash", ph);
    return m;
  };
  const hashOf = (h: Uint8Array): Uint8Array => encodeCbor([PUBKEY_HASH_SHA256, h]);

  it("is read as CBOR [1, 32-byte hash]: a 31-byte or a 33-byte hash is refused, even one that starts with the real hash", () => {
    const good = claimedPubkeyHash(ev.tagged!.claims);
    assert.ok(good.ok);
    assert.deepEqual(good.value, ev.spkiSha256);
    const short = ev.spkiSha256.subarray(0, 31);
    const long = Uint8Array.from([...ev.spkiSha256, 0]);
    for (const h of [short, long]) {
      const r = claimedPubkeyHash(claimsWith(hashOf(h)));
      assert.equal(r.ok, false, `${h.length} bytes accepted`);
      assert.match(r.ok ? "" : r.reason, /32-byte hash/);
      // The certificate's binding reads the claim the same way.
      const binding = checkBinding({ ...ev, tagged: { ...ev.tagged!, claims: claimsWith(hashOf(h)) } }).find((b) => b.check === "binding.pubkey-hash");
      assert.equal(binding?.ok, false);
      assert.match(binding?.detail ?? "", /32-byte hash/);
    }
  });

  it("names what is wrong: missing, not a byte string, not CBOR, another hash algorithm", () => {
    const reason = (ph: CborValue | undefined): string => {
      const r = claimedPubkeyHash(claimsWith(ph));
      assert.equal(r.ok, false);
      return r.ok ? "" : r.reason;
    };
    assert.match(reason(undefined), /claim is missing/);
    assert.match(reason("text"), /must be a byte string/);
    assert.match(reason(Uint8Array.of(0x9f)), /does not decode/);
    assert.match(reason(encodeCbor([2, ev.spkiSha256])), /32-byte hash/);
  });
});
