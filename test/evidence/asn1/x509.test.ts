import assert from "node:assert/strict";
import { X509Certificate, createPublicKey, verify } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { children, readTlv } from "../../../proxy/evidence/asn1/der.js";
import { DerError } from "../../../proxy/core/errors.js";
import { pemBlocks } from "../../../proxy/evidence/asn1/pem.js";
import { ecdsaSignatureHash, ecJwk, parseCertificate, parseCrl, type Certificate, type Crl } from "../../../proxy/evidence/asn1/x509.js";
import { enc, h, hex, throwsDer } from "../../support/der.js";
import { VECTORS } from "../../support/vectors.js";

const bytes = (p: string): Uint8Array => new Uint8Array(readFileSync(join(VECTORS, p)));
const text = (p: string): string => readFileSync(join(VECTORS, p), "latin1");

/** Parse, or throw only DerError. Returns true if it parsed. */
function parsesOrDerError(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (!(e instanceof DerError)) throw new Error(`non-DerError escaped: ${String(e)}`);
    return false;
  }
}

function verifies(signed: Certificate | Crl, issuer: Certificate): boolean {
  const pk = issuer.publicKey;
  assert.equal(pk.algorithm, "EC");
  if (pk.algorithm !== "EC") return false;
  const key = createPublicKey({ key: ecJwk(pk.point, pk.curve), format: "jwk" });
  return verify(ecdsaSignatureHash(signed.signatureAlgorithm), signed.tbs, key, signed.signature);
}

// ---- the vector certificates ----------------------------------------------------------------------

interface Named {
  name: string;
  der: Uint8Array;
}

const SGX_SOURCES = ["phala", "mobilecoin", "automata"];
const QUOTES = [
  "sgx/phala/quote.bin",
  "sgx/mobilecoin/quote.bin",
  "sgx/automata/quote.bin",
  "sgx/occlum/quote.bin",
  "sgx/fortanix/quote-old-root.bin",
  "sgx/fortanix/quote-chain-out-of-order.bin",
  "sgx/fortanix/quote-corrupted.bin",
];

function issuerChainFiles(): string[] {
  const out: string[] = [];
  for (const s of SGX_SOURCES) {
    for (const f of readdirSync(join(VECTORS, "sgx", s, "collateral"))) {
      if (f.endsWith("-issuer-chain.pem")) out.push(`sgx/${s}/collateral/${f}`);
    }
  }
  return out.sort();
}

const RATLS = ["ratls/gramine-cert.pem", "ratls/intel-sgxsdk-cert.pem", "ratls/rats-tls-cert.pem"];

function allCertificates(): Named[] {
  const out: Named[] = [];
  for (const f of issuerChainFiles()) pemBlocks(text(f)).forEach((der, i) => out.push({ name: `${f}#${i}`, der }));
  for (const q of QUOTES) pemBlocks(bytes(q)).forEach((der, i) => out.push({ name: `${q}#${i}`, der }));
  for (const f of RATLS) pemBlocks(text(f)).forEach((der, i) => out.push({ name: `${f}#${i}`, der }));
  out.push({ name: "roots/intel-sgx-root-ca.pem", der: pemBlocks(text("roots/intel-sgx-root-ca.pem"))[0]! });
  out.push({ name: "roots/intel-sgx-root-ca-2018-2033.der", der: bytes("roots/intel-sgx-root-ca-2018-2033.der") });
  return out;
}

function toPem(der: Uint8Array): string {
  return `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString("base64")}\n-----END CERTIFICATE-----\n`;
}

const ROOT = (): Certificate => parseCertificate(pemBlocks(text("roots/intel-sgx-root-ca.pem"))[0]!);

// ---- PEM ---------------------------------------------------------------------------------------

describe("pemBlocks", () => {
  const rootPem = text("roots/intel-sgx-root-ca.pem");
  const rootDer = new Uint8Array(new X509Certificate(rootPem).raw);

  it("finds the NUL-terminated PEM chain inside raw quote bytes", () => {
    const quote = bytes("sgx/phala/quote.bin");
    assert.equal(quote.lastIndexOf(0x00) > quote.lastIndexOf(0x2d /* '-' */), true);
    const ders = pemBlocks(quote);
    assert.equal(ders.length, 3);
    const pems = text("sgx/phala/quote.bin").match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    assert.equal(pems.length, 3);
    pems.forEach((p, i) => assert.deepEqual(ders[i], new Uint8Array(new X509Certificate(p).raw)));
  });

  it("accepts CRLF, surrounding text, NULs and a string or byte input", () => {
    const messy = `issuer chain follows\r\n\r\n${rootPem.replace(/\n/g, "\r\n")}\r\ntrailer\0\0\0`;
    assert.deepEqual(pemBlocks(messy), [rootDer]);
    assert.deepEqual(pemBlocks(new Uint8Array(Buffer.from(messy, "latin1"))), [rootDer]);
    const body = Buffer.from(rootDer).toString("base64");
    assert.deepEqual(pemBlocks(`-----BEGIN CERTIFICATE-----${body}-----END CERTIFICATE-----`), [rootDer]);
  });

  it("returns [] without blocks, and skips blocks with other labels", () => {
    assert.deepEqual(pemBlocks(""), []);
    assert.deepEqual(pemBlocks("no pem here\0"), []);
    const mixed = `-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${rootPem}`;
    assert.deepEqual(pemBlocks(mixed), [rootDer]);
    assert.deepEqual(pemBlocks(mixed, "PRIVATE KEY"), [new Uint8Array([0, 0, 0])]);
    const crlDer = bytes("sgx/phala/collateral/pck-crl.der");
    const crlPem = `-----BEGIN X509 CRL-----\n${Buffer.from(crlDer).toString("base64").replace(/.{64}/g, "$&\n")}\n-----END X509 CRL-----\n`;
    assert.deepEqual(pemBlocks(crlPem, "X509 CRL"), [crlDer]);
    assert.deepEqual(pemBlocks(crlPem), []);
  });

  it("decodes padding correctly", () => {
    const block = (b: string): string => `-----BEGIN X-----\n${b}\n-----END X-----`;
    assert.equal(hex(pemBlocks(block("AA=="), "X")[0]!), "00");
    assert.equal(hex(pemBlocks(block("AAA="), "X")[0]!), "0000");
    assert.equal(hex(pemBlocks(block("AAAA"), "X")[0]!), "000000");
    assert.equal(hex(pemBlocks(block("/w=="), "X")[0]!), "ff");
    assert.equal(hex(pemBlocks(block("AQID\nBA=="), "X")[0]!), "01020304");
  });

  it("refuses malformed blocks with PEM_INVALID", () => {
    const block = (b: string): string => `-----BEGIN X-----\n${b}\n-----END X-----`;
    const bad = [
      `-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----`, // mismatched labels
      `-----BEGIN CERTIFICATE-----\nAAAA\n`, // no END
      `-----BEGIN CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----`, // nested BEGIN
      `-----END CERTIFICATE-----\n`, // stray END
      `-----BEGIN CERTIFICATE\nAAAA\n-----END CERTIFICATE-----`, // unterminated BEGIN line
      block("AA*A"),
      block("AA\0A"),
      block("AAA\u00e9"),
      block("AB=="), // non-canonical: low bits set
      block("AAB="),
      block("AA==AA=="), // data after padding
      block("AAA"), // not a whole quantum
      block("A==="),
      block(""), // empty
      block("Proc-Type: 4,ENCRYPTED\n\nAAAA"), // RFC 1421 headers
    ];
    for (const b of bad) throwsDer(() => pemBlocks(b, b.includes("BEGIN X-") ? "X" : "CERTIFICATE"), "PEM_INVALID");
    throwsDer(() => pemBlocks(`${rootPem}\n-----BEGIN CERTIFICATE-----\nMIIC\0`), "PEM_INVALID");
  });
});

// ---- certificates ----------------------------------------------------------------------------------

describe("parseCertificate on every vector certificate, against node:crypto", () => {
  const certs = allCertificates();
  it("the vectors hold the expected number of certificates", () => {
    // 9 issuer chains of 2, 7 quote chains of 3, 3 RA-TLS certificates, 2 roots.
    assert.equal(certs.length, 9 * 2 + 7 * 3 + 3 + 2);
  });

  for (const { name, der } of certs) {
    it(name, () => {
      const c = parseCertificate(der);
      // Node is given PEM, not DER: handed the DER of an RA-TLS certificate, X509Certificate finds
      // the PEM chain inside the quote in its extension and parses an Intel CA certificate instead.
      const x = new X509Certificate(toPem(der));
      assert.deepEqual(c.der, der);
      assert.deepEqual(new Uint8Array(x.raw), c.der);
      assert.equal(c.version, 3);
      assert.equal(c.serialHex.toUpperCase(), x.serialNumber);
      assert.equal(c.serialHex, hex(c.serial));
      assert.ok(c.serial.length <= 20 && (c.serial.length === 1 || c.serial[0] !== 0));
      assert.equal(c.subjectText, x.subject.split("\n").join(","));
      assert.equal(c.issuerText, x.issuer.split("\n").join(","));
      assert.equal(c.notBefore.getTime(), new Date(x.validFrom).getTime());
      assert.equal(c.notAfter.getTime(), new Date(x.validTo).getTime());
      assert.deepEqual(c.spki, new Uint8Array(x.publicKey.export({ type: "spki", format: "der" })));
      assert.equal(c.basicConstraints?.ca ?? false, x.ca);
      assert.equal(c.signatureAlgorithm, "1.2.840.10045.4.3.2");

      assert.equal(c.publicKey.algorithm, "EC");
      if (c.publicKey.algorithm === "EC") {
        const jwk = x.publicKey.export({ format: "jwk" });
        const mine = ecJwk(c.publicKey.point, c.publicKey.curve);
        assert.equal(mine.crv, jwk.crv);
        assert.equal(mine.x, jwk.x);
        assert.equal(mine.y, jwk.y);
      }

      // Byte fields are views of the input, and tbs / issuer / subject are its exact elements.
      for (const f of [c.tbs, c.issuer, c.subject, c.spki, c.signature, c.serial]) assert.equal(f.buffer, der.buffer);
      assert.equal(c.issuer[0], 0x30);
      assert.equal(c.subject[0], 0x30);
      assert.equal(new Set(c.extensions.map((e) => hex(e.oidBytes))).size, c.extensions.length);
      for (const e of c.extensions) assert.equal(e.oidBytes[0], 0x06);
      if (c.subjectKeyId) assert.equal(c.subjectKeyId.length, 20);
    });
  }
});

describe("signatures over the parsed tbs verify (tbs extraction is byte-exact)", () => {
  for (const f of issuerChainFiles()) {
    it(f, () => {
      const [leaf, root] = pemBlocks(text(f)).map((d) => parseCertificate(d));
      assert.ok(leaf && root);
      assert.deepEqual(leaf.issuer, root.subject);
      assert.ok(verifies(leaf, root), "leaf under root");
      assert.ok(verifies(root, root), "root self-signed");
      assert.deepEqual(root.spki, ROOT().spki);
      assert.deepEqual(leaf.authorityKeyId, root.subjectKeyId);
      // A flipped bit in the signed bytes must not verify.
      const tampered = { ...leaf, tbs: Uint8Array.from(leaf.tbs) } as Certificate;
      tampered.tbs[tampered.tbs.length - 1]! ^= 1;
      assert.equal(verifies(tampered, root), false);
    });
  }

  for (const q of QUOTES.filter((p) => !p.includes("corrupted"))) {
    it(`${q}: PCK chain ordered by issuer`, () => {
      const chain = pemBlocks(bytes(q)).map((d) => parseCertificate(d));
      assert.equal(chain.length, 3);
      for (const c of chain) {
        const issuer = chain.find((o) => hex(o.subject) === hex(c.issuer));
        assert.ok(issuer, `issuer of ${c.subjectText}`);
        assert.ok(verifies(c, issuer), `${c.subjectText} under ${issuer.subjectText}`);
        assert.ok(verifies(c, ROOT()) === issuer.subjectText.startsWith("CN=Intel SGX Root CA"));
      }
    });
  }

  for (const f of RATLS) {
    it(`${f}: self-signed under its own key`, () => {
      const c = parseCertificate(pemBlocks(text(f))[0]!);
      assert.deepEqual(c.issuer, c.subject);
      assert.ok(verifies(c, c));
    });
  }
});

describe("facts of the vector certificates", () => {
  it("Intel SGX Root CA (2049) and its 2018-2033 certificate share the key", () => {
    const root = ROOT();
    const old = parseCertificate(bytes("roots/intel-sgx-root-ca-2018-2033.der"));
    assert.equal(root.notAfter.toISOString(), "2049-12-31T23:59:59.000Z");
    assert.equal(root.notBefore.toISOString(), "2018-05-21T10:45:10.000Z");
    assert.equal(old.notAfter.getUTCFullYear(), 2033);
    assert.equal(old.notAfter.toISOString(), "2033-05-21T10:41:10.000Z");
    assert.deepEqual(old.spki, root.spki);
    assert.deepEqual(old.subject, root.subject);
    assert.notDeepEqual(old.der, root.der);
    assert.ok(verifies(old, root));
    for (const c of [root, old]) {
      assert.deepEqual(c.basicConstraints, { ca: true, pathLen: 1 });
      assert.equal(c.serialHex, "22650cd65a9d3489f383b49552bf501b392706ac");
      assert.equal(hex(c.subjectKeyId!), "22650cd65a9d3489f383b49552bf501b392706ac");
      assert.deepEqual(c.authorityKeyId, c.subjectKeyId);
      assert.equal(c.subjectText, "CN=Intel SGX Root CA,O=Intel Corporation,L=Santa Clara,ST=CA,C=US");
      assert.equal(c.publicKey.algorithm === "EC" && c.publicKey.curve, "P-256");
    }
    const ku = root.keyUsage!;
    assert.deepEqual(
      Object.entries(ku)
        .filter(([, v]) => v)
        .map(([k]) => k),
      ["keyCertSign", "cRLSign"],
    );
    const crit = root.extensions
      .filter((e) => e.critical)
      .map((e) => e.oid)
      .sort();
    assert.deepEqual(crit, ["2.5.29.15", "2.5.29.19"]);
  });

  it("PCK leaf: not a CA, digitalSignature + nonRepudiation, SGX extension present", () => {
    const [leaf, ca] = pemBlocks(bytes("sgx/phala/quote.bin")).map((d) => parseCertificate(d));
    assert.ok(leaf && ca);
    assert.deepEqual(leaf.basicConstraints, { ca: false });
    assert.equal(leaf.keyUsage?.digitalSignature, true);
    assert.equal(leaf.keyUsage?.nonRepudiation, true);
    assert.equal(leaf.keyUsage?.keyCertSign, false);
    assert.deepEqual(ca.basicConstraints, { ca: true, pathLen: 0 });
    assert.equal(leaf.serialHex, "81b77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
    assert.equal(leaf.subjectText, "CN=Intel SGX PCK Certificate,O=Intel Corporation,L=Santa Clara,ST=CA,C=US");
    assert.equal(leaf.issuerText, "CN=Intel SGX PCK Processor CA,O=Intel Corporation,L=Santa Clara,ST=CA,C=US");
    const sgx = leaf.extensions.find((e) => e.oid === "1.2.840.113741.1.13.1");
    assert.ok(sgx);
    assert.equal(hex(sgx.oidBytes), "06092a864886f84d010d01");
    assert.equal(sgx.critical, false);
  });

  it("Gramine RA-TLS: the legacy OID bytes exactly, P-384, explicit NULL signature parameters", () => {
    const c = parseCertificate(pemBlocks(text("ratls/gramine-cert.pem"))[0]!);
    const legacy = c.extensions.filter((e) => hex(e.oidBytes) === "060b06092a864886f84d8a3906");
    assert.equal(legacy.length, 1);
    const ext = legacy[0]!;
    assert.equal(hex(ext.oidBytes.subarray(2)), "06092a864886f84d8a3906"); // the trap bytes, as the OID content
    assert.equal(ext.oid, "0.6.9.42.840.113741.1337.6");
    assert.equal(ext.critical, false);
    assert.ok(ext.value.length > 1000); // a quote
    assert.ok(c.extensions.some((e) => e.oid === "2.23.133.5.4.9"));
    assert.equal(c.publicKey.algorithm, "EC");
    if (c.publicKey.algorithm === "EC") {
      assert.equal(c.publicKey.curve, "P-384");
      assert.equal(c.publicKey.point.length, 97);
    }
    // ecdsa-with-SHA256 with an explicit NULL, both in the tbs and outside it.
    const algWithNull = "300c06082a8648ce3d0403020500";
    assert.ok(hex(c.tbs).includes(algWithNull));
    assert.ok(hex(c.der.subarray(4 + c.tbs.length)).startsWith(algWithNull));
    assert.equal(c.signatureAlgorithm, "1.2.840.10045.4.3.2");
    assert.equal(c.notBefore.toISOString(), "2001-01-01T00:00:00.000Z");
    assert.equal(c.notAfter.toISOString(), "2030-12-31T23:59:59.000Z");
  });

  it("rats-tls RA-TLS is P-256 with the TCG DICE extension; Intel SGX SDK RA-TLS is P-384", () => {
    const r = parseCertificate(pemBlocks(text("ratls/rats-tls-cert.pem"))[0]!);
    assert.equal(r.publicKey.algorithm === "EC" && r.publicKey.curve, "P-256");
    assert.ok(r.extensions.some((e) => e.oid === "2.23.133.5.4.9" && hex(e.oidBytes) === "0606678105050409"));
    const s = parseCertificate(pemBlocks(text("ratls/intel-sgxsdk-cert.pem"))[0]!);
    assert.equal(s.publicKey.algorithm === "EC" && s.publicKey.curve, "P-384");
    // The SDK reuses the PCK SGX-extension OID for a raw quote (v3 header 03 00 02 00).
    const q = s.extensions.find((e) => e.oid === "1.2.840.113741.1.13.1");
    assert.ok(q);
    assert.equal(hex(q.value.subarray(0, 4)), "03000200");
  });
});

// ---- CRLs ----------------------------------------------------------------------------------------

describe("parseCrl on the vector CRLs", () => {
  for (const s of SGX_SOURCES) {
    it(`sgx/${s}: PCK CRL and root CA CRL parse and verify under their issuers`, () => {
      const [pckCa, root] = pemBlocks(text(`sgx/${s}/collateral/pck-crl-issuer-chain.pem`)).map((d) => parseCertificate(d));
      assert.ok(pckCa && root);
      const pck = parseCrl(bytes(`sgx/${s}/collateral/pck-crl.der`));
      const rootCrl = parseCrl(bytes(`sgx/${s}/collateral/root-ca-crl.der`));
      for (const [crl, issuer] of [
        [pck, pckCa],
        [rootCrl, root],
      ] as const) {
        assert.equal(crl.version, 2);
        assert.deepEqual(crl.issuer, issuer.subject);
        assert.equal(crl.issuerText, issuer.subjectText);
        assert.ok(verifies(crl, issuer), `${crl.issuerText} CRL signature`);
        assert.deepEqual(crl.authorityKeyId, issuer.subjectKeyId);
        assert.ok(crl.crlNumber !== null && crl.crlNumber.length > 0);
        assert.ok(crl.nextUpdate !== null && crl.nextUpdate > crl.thisUpdate);
        assert.deepEqual(crl.extensions.map((e) => e.oid).sort(), ["2.5.29.20", "2.5.29.35"]);
        assert.equal(crl.tbs.buffer, crl.der.buffer);
      }
      assert.deepEqual(root.spki, ROOT().spki);
      assert.equal(rootCrl.revoked.size, 0);
    });
  }

  it("facts: dates, revoked entries with reason-code entry extensions", () => {
    const phala = parseCrl(bytes("sgx/phala/collateral/pck-crl.der"));
    assert.equal(phala.thisUpdate.toISOString(), "2025-06-19T10:23:18.000Z");
    assert.equal(phala.nextUpdate?.toISOString(), "2025-07-19T10:23:18.000Z");
    assert.equal(phala.revoked.size, 0);
    assert.equal(phala.issuerText, "CN=Intel SGX PCK Processor CA,O=Intel Corporation,L=Santa Clara,ST=CA,C=US");

    const mobilecoin = parseCrl(bytes("sgx/mobilecoin/collateral/pck-crl.der"));
    assert.equal(mobilecoin.nextUpdate?.toISOString(), "2023-05-21T22:00:36.000Z");

    const automata = parseCrl(bytes("sgx/automata/collateral/pck-crl.der"));
    assert.equal(automata.issuerText, "CN=Intel SGX PCK Platform CA,O=Intel Corporation,L=Santa Clara,ST=CA,C=US");
    assert.equal(automata.revoked.size, 44);
    assert.equal(automata.revoked.get("6fc34e5023e728923435d61aa4b83c618166ad35")?.toISOString(), "2025-08-15T05:41:26.000Z");
    assert.ok(automata.revoked.has("efae6e9715fca13b87e333e8261ed6d990a926ad"));
    for (const k of automata.revoked.keys()) assert.match(k, /^(00|[0-9a-f]{2})*$/);
    for (const k of automata.revoked.keys()) assert.ok(!k.startsWith("00") || k === "00");
  });
});

// ---- helpers --------------------------------------------------------------------------------------

describe("ecdsaSignatureHash and ecJwk", () => {
  it("maps the ECDSA OIDs and refuses others", () => {
    assert.equal(ecdsaSignatureHash("1.2.840.10045.4.3.2"), "sha256");
    assert.equal(ecdsaSignatureHash("1.2.840.10045.4.3.3"), "sha384");
    assert.equal(ecdsaSignatureHash("1.2.840.10045.4.3.4"), "sha512");
    throwsDer(() => ecdsaSignatureHash("1.2.840.113549.1.1.11"), "X509_SIGALG_UNSUPPORTED");
    throwsDer(() => ecdsaSignatureHash("1.2.840.10045.4.1"), "X509_SIGALG_UNSUPPORTED");
  });
  it("builds a JWK node:crypto accepts, and refuses bad points and curves", () => {
    const root = ROOT();
    assert.equal(root.publicKey.algorithm, "EC");
    if (root.publicKey.algorithm !== "EC") return;
    const point = root.publicKey.point;
    const jwk = ecJwk(point, "P-256");
    assert.equal(jwk.kty, "EC");
    assert.equal(Buffer.from(jwk.x, "base64url").length, 32);
    const key = createPublicKey({ key: jwk, format: "jwk" });
    assert.deepEqual(new Uint8Array(key.export({ type: "spki", format: "der" })), root.spki);
    throwsDer(() => ecJwk(point.subarray(0, 64), "P-256"), "X509_KEY_UNSUPPORTED");
    throwsDer(() => ecJwk(Uint8Array.from([0x02, ...point.subarray(1)]), "P-256"), "X509_KEY_UNSUPPORTED");
    throwsDer(() => ecJwk(point, "P-384"), "X509_KEY_UNSUPPORTED");
    throwsDer(() => ecJwk(point, "secp256k1"), "X509_KEY_UNSUPPORTED");
  });
});

// ---- malformed input ------------------------------------------------------------------------------

/** Top-level children of a certificate, and of its tbs, for rebuilding variants. */
function parts(der: Uint8Array): { tbs: Uint8Array[]; alg: Uint8Array; sig: Uint8Array } {
  const top = readTlv(der, 0);
  const [tbsT, algT, sigT] = children(der, top);
  assert.ok(tbsT && algT && sigT);
  const tbs = children(der, tbsT).map((t) => der.subarray(t.start, t.end));
  return { tbs, alg: der.subarray(algT.start, algT.end), sig: der.subarray(sigT.start, sigT.end) };
}

function rebuild(tbs: Uint8Array[], alg: Uint8Array, sig: Uint8Array): Uint8Array {
  return enc(0x30, enc(0x30, ...tbs), alg, sig);
}

describe("malformed certificates and CRLs throw DerError only", () => {
  const leafDer = pemBlocks(bytes("sgx/phala/quote.bin"))[0]!;
  const rootDer = pemBlocks(text("roots/intel-sgx-root-ca.pem"))[0]!;
  const crlDer = bytes("sgx/automata/collateral/pck-crl.der");

  it("the rebuild helper round-trips", () => {
    const p = parts(leafDer);
    assert.deepEqual(rebuild(p.tbs, p.alg, p.sig), leafDer);
  });

  it("truncated at every length", () => {
    for (const der of [leafDer, rootDer, pemBlocks(text("ratls/gramine-cert.pem"))[0]!]) {
      for (let n = 0; n < der.length; n++) {
        assert.equal(
          parsesOrDerError(() => parseCertificate(der.subarray(0, n))),
          false,
          `length ${n}`,
        );
        assert.equal(
          parsesOrDerError(() => parseCertificate(der.slice(0, n))),
          false,
          `length ${n} (copy)`,
        );
      }
    }
    for (let n = 0; n < crlDer.length; n++)
      assert.equal(
        parsesOrDerError(() => parseCrl(crlDer.subarray(0, n))),
        false,
        `CRL length ${n}`,
      );
    throwsDer(() => parseCertificate(leafDer.subarray(0, leafDer.length - 1)), "DER_TRUNCATED");
  });

  it("every single-byte corruption parses or throws DerError", () => {
    for (const der of [rootDer, leafDer, crlDer]) {
      const isCrl = der === crlDer;
      for (let i = 0; i < der.length; i++) {
        for (const v of [0x00, 0x01, 0x7f, 0x80, 0x81, 0xff, der[i]! ^ 0x01, der[i]! ^ 0x20]) {
          const m = Uint8Array.from(der);
          m[i] = v;
          parsesOrDerError(() => (isCrl ? parseCrl(m) : parseCertificate(m)));
        }
      }
    }
  });

  it("refuses trailing bytes", () => {
    throwsDer(() => parseCertificate(Buffer.concat([leafDer, new Uint8Array([0])])), "DER_TRAILING");
    throwsDer(() => parseCertificate(Buffer.concat([leafDer, rootDer])), "DER_TRAILING");
    throwsDer(() => parseCrl(Buffer.concat([crlDer, new Uint8Array([0x05, 0x00])])), "DER_TRAILING");
  });

  it("refuses non-minimal and indefinite lengths", () => {
    // 30 82 LL LL → 30 83 00 LL LL
    assert.equal(leafDer[1], 0x82);
    const nonMinimal = Buffer.concat([new Uint8Array([0x30, 0x83, 0x00]), leafDer.subarray(2)]);
    throwsDer(() => parseCertificate(nonMinimal), "DER_LENGTH");
    const indefinite = Buffer.concat([new Uint8Array([0x30, 0x80]), leafDer.subarray(4), new Uint8Array([0, 0])]);
    throwsDer(() => parseCertificate(indefinite), "DER_INDEFINITE");
    // The same inside: the version [0] (a0 03 ...) re-encoded as a0 81 03 ...
    const p = parts(rootDer);
    const v = p.tbs[0]!;
    assert.equal(hex(v), "a003020102");
    const inner = rebuild([h("a08103020102"), ...p.tbs.slice(1)], p.alg, p.sig);
    throwsDer(() => parseCertificate(inner), "DER_LENGTH");
  });

  it("refuses a signature algorithm that differs from the signed one", () => {
    const p = parts(rootDer);
    const sha384 = h("300a06082a8648ce3d040303");
    throwsDer(() => parseCertificate(rebuild(p.tbs, sha384, p.sig)), "X509_SIGALG_MISMATCH");
  });

  it("accepts absent or NULL ECDSA parameters, refuses any other", () => {
    const p = parts(rootDer);
    const withNull = h("300c06082a8648ce3d0403020500");
    const tbsNull = [...p.tbs];
    tbsNull[2] = withNull;
    assert.equal(parseCertificate(rebuild(tbsNull, withNull, p.sig)).signatureAlgorithm, "1.2.840.10045.4.3.2");
    assert.equal(parseCertificate(rebuild(tbsNull, p.alg, p.sig)).signatureAlgorithm, "1.2.840.10045.4.3.2");
    const withInt = h("300d06082a8648ce3d040302020100");
    tbsNull[2] = withInt;
    throwsDer(() => parseCertificate(rebuild(tbsNull, withInt, p.sig)), "X509_STRUCTURE", /absent or NULL/);
  });

  it("refuses structural problems with X509_STRUCTURE and a message naming the field", () => {
    const p = parts(rootDer);
    // v1 certificate (no version field) carrying extensions
    throwsDer(() => parseCertificate(rebuild(p.tbs.slice(1), p.alg, p.sig)), "X509_STRUCTURE", /extensions: not allowed in a v1/);
    // missing subjectPublicKeyInfo
    throwsDer(() => parseCertificate(rebuild([...p.tbs.slice(0, 6), p.tbs[7]!], p.alg, p.sig)), "X509_STRUCTURE", /subjectPublicKeyInfo/);
    // validity with one time only
    const validity = p.tbs[4]!;
    const oneTime = enc(0x30, validity.subarray(2, 2 + 15));
    throwsDer(() => parseCertificate(rebuild([...p.tbs.slice(0, 4), oneTime, ...p.tbs.slice(5)], p.alg, p.sig)), "X509_STRUCTURE", /validity\.notAfter: missing/);
    // an extra field at the end of the tbs
    throwsDer(() => parseCertificate(rebuild([...p.tbs, h("0500")], p.alg, p.sig)), "X509_STRUCTURE", /tbsCertificate: unexpected element/);
    // negative serial
    throwsDer(() => parseCertificate(rebuild([p.tbs[0]!, h("020180"), ...p.tbs.slice(2)], p.alg, p.sig)), "DER_INTEGER", /serialNumber/);
    // bad time
    const badTime = enc(0x30, enc(0x17, new Uint8Array(Buffer.from("181321104510Z"))), validity.subarray(17));
    throwsDer(() => parseCertificate(rebuild([...p.tbs.slice(0, 4), badTime, ...p.tbs.slice(5)], p.alg, p.sig)), "DER_TIME", /notBefore/);
  });

  it("refuses a duplicated extension and malformed known extensions", () => {
    const p = parts(rootDer);
    const extsWrap = p.tbs[7]!;
    assert.equal(extsWrap[0], 0xa3);
    const extList = children(extsWrap, readTlv(extsWrap, 0))[0]!;
    const exts = children(extsWrap, extList).map((t) => extsWrap.subarray(t.start, t.end));
    const withExts = (list: Uint8Array[]): Uint8Array => rebuild([...p.tbs.slice(0, 7), enc(0xa3, enc(0x30, ...list))], p.alg, p.sig);
    assert.equal(parseCertificate(withExts(exts)).extensions.length, exts.length);
    throwsDer(() => parseCertificate(withExts([...exts, exts[0]!])), "X509_STRUCTURE", /appears twice/);
    const bc = (value: string): Uint8Array => enc(0x30, h("0603551d13"), enc(0x04, h(value)));
    const others = exts.filter((e) => !hex(e).includes("0603551d13"));
    assert.deepEqual(parseCertificate(withExts([...others, bc("3000")])).basicConstraints, { ca: false });
    assert.deepEqual(parseCertificate(withExts([...others, bc("30030101ff")])).basicConstraints, { ca: true });
    throwsDer(() => parseCertificate(withExts([...others, bc("0500")])), "X509_STRUCTURE", /basicConstraints/);
    throwsDer(() => parseCertificate(withExts([...others, bc("30030101ff00")])), "DER_TRAILING", /basicConstraints/);
    throwsDer(() => parseCertificate(withExts([...others, bc("3003010101")])), "DER_BOOLEAN");
    throwsDer(() => parseCertificate(withExts([...others, bc("30060201010101ff")])), "X509_STRUCTURE", /basicConstraints: unexpected element/);
    assert.deepEqual(parseCertificate(withExts([...others, bc("30060101ff020100")])).basicConstraints, { ca: true, pathLen: 0 });
  });

  it("refuses a compressed or wrong-size EC point on a named curve", () => {
    const p = parts(rootDer);
    const spki = parseCertificate(rootDer).spki;
    assert.equal(hex(spki.subarray(0, 27)), "3059301306072a8648ce3d020106082a8648ce3d03010703420004");
    const x = spki.subarray(27, 59);
    const compressed = enc(0x30, spki.subarray(2, 23), enc(0x03, new Uint8Array([0, 0x02]), x));
    throwsDer(() => parseCertificate(rebuild([...p.tbs.slice(0, 6), compressed, p.tbs[7]!], p.alg, p.sig)), "X509_KEY_UNSUPPORTED");
  });

  it("refuses garbage and non-certificates", () => {
    throwsDer(() => parseCertificate(new Uint8Array(0)), "DER_TRUNCATED");
    throwsDer(() => parseCertificate(h("0500")), "X509_STRUCTURE");
    throwsDer(() => parseCertificate(h("3000")), "X509_STRUCTURE");
    throwsDer(() => parseCrl(rootDer), "CRL_STRUCTURE");
    throwsDer(() => parseCertificate(crlDer), "X509_STRUCTURE");
    throwsDer(() => parseCertificate("not bytes" as unknown as Uint8Array), "X509_STRUCTURE");
  });

  it("parses a certificate held at an offset inside a larger buffer", () => {
    const big = new Uint8Array(leafDer.length + 10);
    big.set(leafDer, 7);
    const c = parseCertificate(big.subarray(7, 7 + leafDer.length));
    assert.deepEqual(c.der, leafDer);
    assert.equal(c.serialHex, "81b77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
  });

  it("parses fast", () => {
    for (let i = 0; i < 200; i++) parseCertificate(leafDer);
    const n = 2000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) parseCertificate(leafDer);
    const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
    assert.ok(us < 200, `${us.toFixed(1)} µs per PCK certificate`); // generous bound for slow CI; ~8 µs here
  });
});
