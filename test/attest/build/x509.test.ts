import assert from "node:assert/strict";
import { X509Certificate, createHash, createPublicKey, generateKeyPairSync, verify, type KeyObject } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as tls from "node:tls";
import { validatePath } from "../../../proxy/evidence/dcap/chain.js";
import { Tag, children, readDisplayString, readExactTlv, readOid, readTime, readTlv, readUnsigned } from "../../../proxy/evidence/asn1/der.js";
import {
  bitString,
  bool,
  concat,
  enumerated,
  explicit,
  generalizedTime,
  int,
  nullValue,
  octetString,
  oid,
  printableString,
  seq,
  set,
  time,
  tlv,
  utcTime,
  utf8String,
} from "../../../proxy/attest/build/der-write.js";
import { InputError } from "../../../proxy/core/errors.js";
import { SGX_EXTENSION_OID, parsePckExtension, parseSgxExtensionValue } from "../../../proxy/evidence/asn1/sgx-extension.js";
import { pemBlocks } from "../../../proxy/evidence/asn1/pem.js";
import { buildSgxExtension, encodeSgxExtension } from "../../../proxy/attest/build/sgx-extension.js";
import {
  authorityKeyIdentifier,
  basicConstraints,
  buildCertificate,
  buildCrl,
  buildTbsCertList,
  buildTbsCertificate,
  crlDistributionPoint,
  derToPem,
  encodeName,
  keyIdentifier,
  keyUsage,
  subjectKeyIdentifier,
  type ExtensionSpec,
  type KeyUsageBits,
  type Name,
  type NameAttribute,
} from "../../../proxy/attest/build/x509.js";
import { OID, ecdsaSignatureHash, parseCertificate, parseCrl, type Certificate } from "../../../proxy/evidence/asn1/x509.js";
import { h, hex } from "../../support/der.js";
import { VECTORS } from "../../support/vectors.js";

const bytes = (p: string): Uint8Array => new Uint8Array(readFileSync(join(VECTORS, p)));
const text = (p: string): string => readFileSync(join(VECTORS, p), "latin1");

function throwsInput(f: () => unknown, code: string, message?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const ec = (curve: "P-256" | "P-384"): { publicKey: KeyObject; privateKey: KeyObject } => generateKeyPairSync("ec", { namedCurve: curve });
const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: "der", type: "spki" }));

/** Gramine's legacy extension OID element exactly as Gramine writes it: the content is itself 06 09 …. */
const GRAMINE_LEGACY_OID_ELEMENT = h("06 0b 06 09 2a 86 48 86 f8 4d 8a 39 06");
/** The bytes 06 09 2A 86 48 86 F8 4D 8A 39 06 used as a complete OID element (1.2.840.113741.1337.6). */
const PLAIN_1337_OID_ELEMENT = h("06 09 2a 86 48 86 f8 4d 8a 39 06");

/** Tags of the tbsCertificate's validity times. */
function validityTags(der: Uint8Array): [number, number] {
  const cert = readExactTlv(der);
  const tbs = children(der, cert)[0]!;
  const validity = children(der, tbs)[4]!;
  const [a, b] = children(der, validity);
  return [a!.tag, b!.tag];
}

// ---- der-write ----------------------------------------------------------------------------------

describe("der-write", () => {
  it("writes minimal lengths at every boundary", () => {
    for (const [n, header] of [
      [0, "0400"],
      [127, "047f"],
      [128, "048180"],
      [255, "0481ff"],
      [256, "04820100"],
      [65535, "0482ffff"],
      [65536, "0483010000"],
    ] as const) {
      const e = octetString(new Uint8Array(n));
      assert.equal(hex(e.subarray(0, header.length / 2)), header, `length ${n}`);
      const t = readExactTlv(e);
      assert.equal(t.contentEnd - t.contentStart, n);
    }
    assert.equal(hex(tlv(0x30, h("0101ff"), h("0500"))), "30050101ff0500");
    assert.equal(hex(seq()), "3000");
    assert.ok(!(tlv(0x04, h("00")) instanceof Buffer), "returns plain Uint8Array");
  });

  it("refuses identifier octets der.ts cannot read", () => {
    throwsInput(() => tlv(0, h("")), "DER_ENCODE");
    throwsInput(() => tlv(0x1f, h("")), "DER_ENCODE");
    throwsInput(() => tlv(0x100, h("")), "DER_ENCODE");
  });

  it("encodes INTEGER from number, bigint and unsigned magnitude", () => {
    const cases: [bigint | number | Uint8Array, string][] = [
      [0, "020100"],
      [1, "020101"],
      [127, "02017f"],
      [128, "02020080"],
      [255, "020200ff"],
      [256, "02020100"],
      [-1, "0201ff"],
      [-128, "020180"],
      [-129, "0202ff7f"],
      [-256, "0202ff00"],
      [-32768, "02028000"],
      [-32769, "0203ff7fff"],
      [2n ** 64n, "0209010000000000000000"],
      [-(2n ** 63n), "02088000000000000000"],
      [Number.MAX_SAFE_INTEGER, "02071fffffffffffff"],
      [h(""), "020100"],
      [h("00"), "020100"],
      [h("000000"), "020100"],
      [h("0001"), "020101"],
      [h("80"), "02020080"],
      [h("00ff"), "020200ff"],
      [h("000080"), "02020080"],
      [h("7f01"), "02027f01"],
    ];
    for (const [v, want] of cases) assert.equal(hex(int(v)), want, `int(${String(v instanceof Uint8Array ? hex(v) : v)})`);
    throwsInput(() => int(2 ** 53), "DER_ENCODE");
    throwsInput(() => int(1.5), "DER_ENCODE");
    throwsInput(() => int(NaN), "DER_ENCODE");
    assert.equal(hex(enumerated(2)), "0a0102");
    assert.equal(hex(enumerated(200)), "0a0200c8");
  });

  it("a 20-byte magnitude with the high bit set gets a leading 0x00 and reads back", () => {
    const mag = h("81b77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
    const e = int(mag);
    assert.equal(hex(e), `0215 00${hex(mag)}`.replace(/ /g, ""));
    assert.deepEqual(readUnsigned(e, readExactTlv(e)), mag);
  });

  it("encodes OBJECT IDENTIFIERs and reads them back", () => {
    assert.equal(hex(oid("1.2.840.10045.2.1")), "06072a8648ce3d0201");
    assert.equal(hex(oid("1.3.132.0.34")), "06052b81040022");
    assert.equal(hex(oid("2.5.29.19")), "0603551d13");
    assert.equal(hex(oid("2.999.3")), "0603883703");
    assert.equal(hex(oid("0.0")), "060100");
    assert.equal(hex(oid("1.2.840.113741.1337.6")), hex(PLAIN_1337_OID_ELEMENT));
    for (const o of ["1.2.840.113741.1.13.1.2.18", "2.23.133.5.4.9", "1.2.3.4294967296", "2.100000000000000000000.5", "0.39.18446744073709551616"]) {
      const e = oid(o);
      assert.equal(readOid(e, readExactTlv(e)), o);
    }
    for (const bad of ["", "1", "3.1", "1.40", "0.40", "1.02", "1..2", "1.2.", "a.b", "-1.2", " 1.2"]) {
      throwsInput(() => oid(bad), "DER_ENCODE", undefined);
    }
  });

  it("encodes the other primitives in their DER forms", () => {
    assert.equal(hex(bool(true)), "0101ff");
    assert.equal(hex(bool(false)), "010100");
    assert.equal(hex(nullValue()), "0500");
    assert.equal(hex(octetString(h("0102"))), "04020102");
    assert.equal(hex(bitString(h("06"), 1)), "03020106");
    assert.equal(hex(bitString(h(""))), "030100");
    assert.equal(hex(bitString(h("abcd"))), "030300abcd");
    throwsInput(() => bitString(h("07"), 1), "DER_ENCODE", /unused bits must be zero/);
    throwsInput(() => bitString(h(""), 1), "DER_ENCODE");
    throwsInput(() => bitString(h("00"), 8), "DER_ENCODE");
    assert.equal(hex(utf8String("Ω")), "0c02cea9");
    throwsInput(() => utf8String("\ud800"), "DER_ENCODE");
    assert.equal(hex(printableString("US")), "13025553");
    throwsInput(() => printableString("a@b"), "DER_ENCODE");
    throwsInput(() => printableString("é"), "DER_ENCODE");
    assert.equal(hex(explicit(0, int(2))), "a003020102");
    assert.equal(hex(explicit(3, seq())), "a3023000");
    throwsInput(() => explicit(31, seq()), "DER_ENCODE");
    assert.equal(hex(concat(h("01"), h(""), h("0203"))), "010203");
  });

  it("sorts SET OF elements by encoding", () => {
    assert.equal(hex(set(int(3), int(1), int(2))), hex(tlv(0x31, int(1), int(2), int(3))));
    assert.equal(hex(set(octetString(h("0000")), octetString(h("00")))), "3107040100040200 00".replace(/ /g, ""));
  });

  it("picks UTCTime for 1950..2049 and GeneralizedTime otherwise (RFC 5280)", () => {
    const cases: [string, number, string][] = [
      ["2049-12-31T23:59:59Z", Tag.UTC_TIME, "491231235959Z"],
      ["2049-06-01T00:00:00Z", Tag.UTC_TIME, "490601000000Z"],
      ["2050-01-01T00:00:00Z", Tag.GENERALIZED_TIME, "20500101000000Z"],
      ["2130-07-04T12:34:56Z", Tag.GENERALIZED_TIME, "21300704123456Z"],
      ["1950-01-01T00:00:00Z", Tag.UTC_TIME, "500101000000Z"],
      ["1949-12-31T23:59:59Z", Tag.GENERALIZED_TIME, "19491231235959Z"],
      ["2000-02-29T01:02:03Z", Tag.UTC_TIME, "000229010203Z"],
    ];
    for (const [iso, tag, body] of cases) {
      const d = new Date(iso);
      const e = time(d);
      assert.equal(e[0], tag, iso);
      assert.equal(Buffer.from(e.subarray(2)).toString("latin1"), body, iso);
      assert.equal(readTime(e, readExactTlv(e)).toISOString(), d.toISOString(), iso);
    }
    // Milliseconds are dropped, not rounded.
    assert.equal(Buffer.from(time(new Date("2024-05-06T07:08:09.999Z")).subarray(2)).toString("latin1"), "240506070809Z");
    assert.equal(Buffer.from(generalizedTime(new Date("2024-05-06T07:08:09Z")).subarray(2)).toString("latin1"), "20240506070809Z");
    throwsInput(() => utcTime(new Date("2050-01-01T00:00:00Z")), "DER_ENCODE");
    throwsInput(() => utcTime(new Date("1949-12-31T23:59:59Z")), "DER_ENCODE");
    throwsInput(() => time(new Date("nope")), "DER_ENCODE");
  });
});

// ---- certificates -------------------------------------------------------------------------------

const NB = new Date("2024-01-01T00:00:00Z");
const NA = new Date("2034-01-01T00:00:00Z");
const AT = new Date("2025-06-01T00:00:00Z");

function devPki(rootCurve: "P-256" | "P-384", caCurve: "P-256" | "P-384", leafCurve: "P-256" | "P-384") {
  const rootKey = ec(rootCurve);
  const caKey = ec(caCurve);
  const leafKey = ec(leafCurve);
  const rootName: Name = [
    ["CN", "Dev SGX Root CA"],
    ["O", "Dev"],
    ["L", "Santa Clara"],
    ["ST", "CA"],
    ["C", "US"],
  ];
  const caName: Name = [
    ["CN", "Dev SGX PCK Processor CA"],
    ["O", "Dev"],
    ["L", "Santa Clara"],
    ["ST", "CA"],
    ["C", "US"],
  ];
  const leafName: Name = [
    ["CN", "Intel SGX PCK Certificate"],
    ["O", "Dev"],
    ["OU", "unit"],
    ["L", "Santa Clara"],
    ["ST", "CA"],
    ["C", "US"],
  ];
  const rootId = keyIdentifier(rootKey.publicKey);
  const caId = keyIdentifier(caKey.publicKey);
  const rootDer = buildCertificate({
    subject: rootName,
    notBefore: NB,
    notAfter: NA,
    publicKey: rootKey.publicKey,
    signingKey: rootKey.privateKey,
    extensions: [authorityKeyIdentifier(rootId), subjectKeyIdentifier(rootKey.publicKey), keyUsage({ keyCertSign: true, cRLSign: true }), basicConstraints({ ca: true, pathLen: 1 })],
  });
  const caDer = buildCertificate({
    subject: caName,
    issuer: rootName,
    notBefore: NB,
    notAfter: NA,
    publicKey: caKey.publicKey,
    signingKey: rootKey.privateKey,
    extensions: [
      authorityKeyIdentifier(rootId),
      crlDistributionPoint("https://dev.invalid/root.crl"),
      subjectKeyIdentifier(spkiOf(caKey.publicKey)),
      keyUsage({ keyCertSign: true, cRLSign: true }),
      basicConstraints({ ca: true, pathLen: 0 }),
    ],
  });
  const sgx = {
    ppid: h("00112233445566778899aabbccddeeff"),
    tcbComponents: [11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128],
    pceSvn: 13,
    cpuSvn: h("0b0b0202ff0100000000000000000080"),
    pceId: h("0000"),
    fmspc: h("00a067110000"),
    sgxType: 0,
  };
  const leafDer = buildCertificate({
    subject: leafName,
    issuer: caName,
    serial: h("01"),
    notBefore: NB,
    notAfter: NA,
    publicKey: leafKey.privateKey, // a private key is accepted: its public half is certified
    signingKey: caKey.privateKey,
    extensions: [
      authorityKeyIdentifier(caId),
      crlDistributionPoint("https://dev.invalid/pckcrl?ca=processor&encoding=der"),
      subjectKeyIdentifier(leafKey.publicKey),
      keyUsage({ digitalSignature: true, nonRepudiation: true }),
      basicConstraints({ ca: false }),
      buildSgxExtension(sgx),
    ],
  });
  return { rootKey, caKey, leafKey, rootName, caName, leafName, rootDer, caDer, leafDer, sgx, rootId, caId };
}

describe("buildCertificate round trips through parseCertificate", () => {
  const pki = devPki("P-384", "P-256", "P-256");

  it("root: self-issued, v3, every field as specified", () => {
    const c = parseCertificate(pki.rootDer);
    assert.equal(c.version, 3);
    assert.equal(c.signatureAlgorithm, OID.ecdsaWithSha384);
    assert.equal(c.subjectText, "CN=Dev SGX Root CA,O=Dev,L=Santa Clara,ST=CA,C=US");
    assert.deepEqual(c.issuer, c.subject);
    assert.deepEqual(c.subject, encodeName(pki.rootName));
    assert.equal(c.notBefore.toISOString(), NB.toISOString());
    assert.equal(c.notAfter.toISOString(), NA.toISOString());
    assert.deepEqual(c.spki, spkiOf(pki.rootKey.publicKey));
    assert.equal(c.publicKey.algorithm, "EC");
    assert.equal(c.publicKey.algorithm === "EC" && c.publicKey.curve, "P-384");
    assert.deepEqual(c.basicConstraints, { ca: true, pathLen: 1 });
    assert.equal(c.keyUsage?.keyCertSign, true);
    assert.equal(c.keyUsage?.cRLSign, true);
    assert.equal(c.keyUsage?.digitalSignature, false);
    assert.deepEqual(c.subjectKeyId, pki.rootId);
    assert.deepEqual(c.authorityKeyId, pki.rootId);
    assert.deepEqual(
      c.extensions.map((e) => [e.oid, e.critical]),
      [
        [OID.authorityKeyId, false],
        [OID.subjectKeyId, false],
        [OID.keyUsage, true],
        [OID.basicConstraints, true],
      ],
    );
    // Default serial: 16 bytes, top bit clear (so no 0x00 pad), not zero.
    assert.ok(c.serial.length <= 16 && c.serial.length >= 1);
    assert.ok(c.serial.some((b) => b !== 0));
    assert.equal(hex(keyUsage({ keyCertSign: true, cRLSign: true }).value), "03020106");
  });

  it("leaf: names, serial, CRL DP, key identifiers and the SGX extension", () => {
    const c = parseCertificate(pki.leafDer);
    const ca = parseCertificate(pki.caDer);
    assert.equal(c.signatureAlgorithm, OID.ecdsaWithSha256);
    assert.equal(c.serialHex, "01");
    assert.deepEqual(c.issuer, ca.subject);
    assert.equal(c.subjectText, "CN=Intel SGX PCK Certificate,O=Dev,OU=unit,L=Santa Clara,ST=CA,C=US");
    assert.deepEqual(c.spki, spkiOf(pki.leafKey.publicKey));
    assert.deepEqual(c.basicConstraints, { ca: false });
    assert.equal(c.keyUsage?.digitalSignature, true);
    assert.equal(c.keyUsage?.nonRepudiation, true);
    assert.equal(c.keyUsage?.keyCertSign, false);
    assert.deepEqual(c.authorityKeyId, ca.subjectKeyId);
    assert.deepEqual(c.subjectKeyId, keyIdentifier(spkiOf(pki.leafKey.publicKey)));
    const bc = c.extensions.find((e) => e.oid === OID.basicConstraints)!;
    assert.equal(hex(bc.value), "3000");
    const dp = c.extensions.find((e) => e.oid === "2.5.29.31")!;
    assert.equal(dp.critical, false);
    const url = "https://dev.invalid/pckcrl?ca=processor&encoding=der";
    assert.equal(hex(dp.value), hex(seq(seq(tlv(0xa0, tlv(0xa0, tlv(0x86, new Uint8Array(Buffer.from(url)))))))));
    const sgx = c.extensions.find((e) => e.oid === SGX_EXTENSION_OID)!;
    assert.equal(sgx.critical, false);
    const p = parsePckExtension(c);
    assert.deepEqual(p.ppid, pki.sgx.ppid);
    assert.deepEqual(p.tcbComponents, pki.sgx.tcbComponents);
    assert.equal(p.pceSvn, pki.sgx.pceSvn);
    assert.deepEqual(p.cpuSvn, pki.sgx.cpuSvn);
    assert.deepEqual(p.pceId, pki.sgx.pceId);
    assert.deepEqual(p.fmspc, pki.sgx.fmspc);
    assert.equal(p.sgxType, 0);
    assert.equal(p.platformInstanceId, undefined);
    assert.equal(p.configuration, undefined);
    assert.equal(hex(keyUsage({ digitalSignature: true, nonRepudiation: true }).value), "030206c0");
  });

  it("the signature verifies under the issuer key (ECDSA, DER)", () => {
    for (const [der, issuer] of [
      [pki.rootDer, pki.rootKey],
      [pki.caDer, pki.rootKey],
      [pki.leafDer, pki.caKey],
    ] as const) {
      const c = parseCertificate(der);
      assert.ok(verify(ecdsaSignatureHash(c.signatureAlgorithm), c.tbs, issuer.publicKey, c.signature));
      assert.ok(!verify(ecdsaSignatureHash(c.signatureAlgorithm), c.tbs, ec("P-256").publicKey, c.signature));
    }
  });

  it("SKI is SHA-1 of the subjectPublicKey BIT STRING content (RFC 5280 method 1)", () => {
    const spki = spkiOf(pki.leafKey.publicKey);
    const top = readExactTlv(spki);
    const bits = children(spki, top)[1]!;
    const want = createHash("sha1")
      .update(spki.subarray(bits.contentStart + 1, bits.contentEnd))
      .digest();
    assert.equal(hex(keyIdentifier(spki)), hex(want));
    assert.equal(hex(keyIdentifier(pki.leafKey.publicKey)), hex(want));
    assert.equal(hex(keyIdentifier(pki.leafKey.privateKey)), hex(want));
    assert.equal(hex(subjectKeyIdentifier({ keyId: h("0102") }).value), "04020102");
    assert.equal(hex(authorityKeyIdentifier(h("0102")).value), "300480020102");
  });

  it("writes extensions in the given order, raw OID bytes verbatim, critical only when true", () => {
    const k = ec("P-256");
    const opaque = new Uint8Array(300).map((_, i) => i & 0xff);
    const der = buildCertificate({
      subject: [["CN", "raw"]],
      notBefore: NB,
      notAfter: NA,
      publicKey: k.publicKey,
      signingKey: k.privateKey,
      extensions: [
        { oid: { raw: GRAMINE_LEGACY_OID_ELEMENT }, value: opaque },
        { oid: { raw: PLAIN_1337_OID_ELEMENT }, critical: false, value: h("0500") },
        { oid: "1.2.3.4", critical: true, value: h("") },
      ],
    });
    const c = parseCertificate(der);
    assert.equal(c.extensions.length, 3);
    const [g, p, x] = c.extensions as [Certificate["extensions"][0], Certificate["extensions"][0], Certificate["extensions"][0]];
    assert.deepEqual(g.oidBytes, GRAMINE_LEGACY_OID_ELEMENT);
    assert.equal(g.oid, "0.6.9.42.840.113741.1337.6");
    assert.equal(g.critical, false);
    assert.deepEqual(g.value, opaque);
    assert.deepEqual(p.oidBytes, PLAIN_1337_OID_ELEMENT);
    assert.equal(p.oid, "1.2.840.113741.1337.6");
    assert.equal(p.critical, false);
    assert.equal(x.critical, true);
    assert.equal(x.value.length, 0);
    // critical: false omits the BOOLEAN: SEQUENCE { OID, OCTET STRING } only.
    const ext = (e: Certificate["extensions"][0]): string => {
      const at = e.oidBytes.byteOffset - der.byteOffset;
      const t = readTlv(der, at - 2);
      return hex(der.subarray(t.start, t.end));
    };
    assert.equal(ext(p), `300f${hex(PLAIN_1337_OID_ELEMENT)}04020500`);
    assert.equal(ext(x), "300a06032a03040101ff0400");
    // The same element as the one in Gramine's own certificate.
    const gramine = parseCertificate(pemBlocks(text("ratls/gramine-cert.pem"))[0]!);
    const legacy = gramine.extensions.find((e) => e.oid === "0.6.9.42.840.113741.1337.6")!;
    assert.deepEqual(legacy.oidBytes, GRAMINE_LEGACY_OID_ELEMENT);
  });

  it("a 20-byte serial with the high bit set gets a leading 0x00", () => {
    const k = ec("P-256");
    const serial = h("ffb77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
    const der = buildCertificate({ subject: [["CN", "s"]], serial, notBefore: NB, notAfter: NA, publicKey: k.publicKey, signingKey: k.privateKey });
    const tbs = children(der, readExactTlv(der))[0]!;
    const serialTlv = children(der, tbs)[1]!;
    assert.equal(hex(der.subarray(serialTlv.start, serialTlv.end)), `021500${hex(serial)}`);
    const c = parseCertificate(der);
    assert.deepEqual(c.serial, serial);
    assert.equal(new X509Certificate(der).serialNumber.toLowerCase(), hex(serial));
    // Leading zero octets of a given serial are redundant and stripped.
    const d2 = buildCertificate({ subject: [["CN", "s"]], serial: h("000042"), notBefore: NB, notAfter: NA, publicKey: k.publicKey, signingKey: k.privateKey });
    assert.equal(parseCertificate(d2).serialHex, "42");
  });

  it("dates in 2050+ use GeneralizedTime, 2049 UTCTime; Node reads both", () => {
    const k = ec("P-384");
    const nb = new Date("2049-12-31T23:59:59Z");
    const na = new Date("2050-01-01T00:00:00Z");
    const der = buildCertificate({ subject: [["CN", "t"]], notBefore: nb, notAfter: na, publicKey: k.publicKey, signingKey: k.privateKey });
    assert.deepEqual(validityTags(der), [Tag.UTC_TIME, Tag.GENERALIZED_TIME]);
    const c = parseCertificate(der);
    assert.equal(c.notBefore.toISOString(), nb.toISOString());
    assert.equal(c.notAfter.toISOString(), na.toISOString());
    const x = new X509Certificate(der);
    assert.equal(new Date(x.validFrom).toISOString(), nb.toISOString());
    assert.equal(new Date(x.validTo).toISOString(), na.toISOString());
    const far = buildCertificate({
      subject: [["CN", "t"]],
      notBefore: new Date("1949-01-01T00:00:00Z"),
      notAfter: new Date("9999-12-31T23:59:59Z"),
      publicKey: k.publicKey,
      signingKey: k.privateKey,
    });
    assert.deepEqual(validityTags(far), [Tag.GENERALIZED_TIME, Tag.GENERALIZED_TIME]);
    assert.equal(parseCertificate(far).notAfter.toISOString(), "9999-12-31T23:59:59.000Z");
  });

  it("refuses what it cannot build", () => {
    const k = ec("P-256");
    const base = { subject: [["CN", "x"]] as Name, notBefore: NB, notAfter: NA, publicKey: k.publicKey, signingKey: k.privateKey };
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const ed = generateKeyPairSync("ed25519");
    const p521 = generateKeyPairSync("ec", { namedCurve: "P-521" });
    throwsInput(() => buildCertificate({ ...base, signingKey: rsa.privateKey }), "X509_BUILD_KEY", /only EC keys/);
    throwsInput(() => buildCertificate({ ...base, signingKey: ed.privateKey }), "X509_BUILD_KEY", /only EC keys/);
    throwsInput(() => buildCertificate({ ...base, signingKey: p521.privateKey }), "X509_BUILD_KEY", /secp521r1 is not supported/);
    throwsInput(() => buildCertificate({ ...base, publicKey: rsa.publicKey }), "X509_BUILD_KEY", /publicKey/);
    throwsInput(() => buildCertificate({ ...base, signingKey: k.publicKey }), "X509_BUILD_KEY", /private key is required/);
    throwsInput(() => buildCertificate({ ...base, serial: h("0000") }), "X509_BUILD", /non-zero/);
    throwsInput(() => buildCertificate({ ...base, serial: new Uint8Array(21).fill(1) }), "X509_BUILD", /at most 20/);
    throwsInput(() => buildCertificate({ ...base, notAfter: new Date(NB.getTime() - 1000) }), "X509_BUILD", /before notBefore/);
    throwsInput(() => buildCertificate({ ...base, notBefore: new Date(NaN) }), "X509_BUILD");
    throwsInput(() => buildCertificate({ ...base, subject: [["C", "USA"]] }), "X509_BUILD", /two-letter/);
    throwsInput(() => buildCertificate({ ...base, subject: [["CN", ""]] }), "X509_BUILD");
    throwsInput(() => buildCertificate({ ...base, subject: [["XX" as NameAttribute, "v"]] }), "X509_BUILD");
    throwsInput(() => buildCertificate({ ...base, extensions: [subjectKeyIdentifier(k.publicKey), subjectKeyIdentifier(k.publicKey)] }), "X509_BUILD", /appears twice/);
    throwsInput(
      () =>
        buildCertificate({
          ...base,
          extensions: [
            { oid: "2.5.29.14", value: h("0400") },
            { oid: { raw: oid("2.5.29.14") }, value: h("0400") },
          ],
        }),
      "X509_BUILD",
      /appears twice/,
    );
    for (const raw of [h(""), h("06"), h("0600"), h("0401aa"), h("06032a0304ff")]) {
      throwsInput(() => buildCertificate({ ...base, extensions: [{ oid: { raw }, value: h("") }] }), "X509_BUILD", /raw OID/);
    }
    throwsInput(() => basicConstraints({ ca: false, pathLen: 0 }), "X509_BUILD");
    throwsInput(() => basicConstraints({ ca: true, pathLen: -1 }), "X509_BUILD");
    throwsInput(() => keyUsage({}), "X509_BUILD", /at least one/);
    throwsInput(() => keyUsage({ digitalsignature: true } as KeyUsageBits), "X509_BUILD", /unknown bit/);
    throwsInput(() => crlDistributionPoint("has space"), "X509_BUILD");
    throwsInput(() => derToPem(h("00"), "bad-label-"), "X509_BUILD");
  });

  it("keyUsage and basicConstraints encodings", () => {
    assert.equal(hex(keyUsage({ digitalSignature: true }).value), "03020780");
    assert.equal(hex(keyUsage({ cRLSign: true }).value), "03020102");
    assert.equal(hex(keyUsage({ encipherOnly: true }).value), "03020001");
    assert.equal(hex(keyUsage({ decipherOnly: true }).value), "0303070080");
    assert.equal(hex(keyUsage({ digitalSignature: true, decipherOnly: true }).value), "0303078080");
    assert.equal(hex(basicConstraints({ ca: false }).value), "3000");
    assert.equal(hex(basicConstraints({ ca: true }).value), "30030101ff");
    assert.equal(hex(basicConstraints({ ca: true, pathLen: 0 }).value), "30060101ff020100");
    assert.equal(basicConstraints({ ca: false }).critical, true);
    assert.equal(keyUsage({ cRLSign: true }).critical, true);
    assert.notEqual(subjectKeyIdentifier({ keyId: h("01") }).critical, true);
    throwsInput(() => subjectKeyIdentifier(h("3000")), "X509_BUILD", /not a SubjectPublicKeyInfo/);
    assert.notEqual(authorityKeyIdentifier(h("01")).critical, true);
    assert.notEqual(crlDistributionPoint("http://x").critical, true);
  });
});

// ---- Node's X509Certificate ---------------------------------------------------------------------

describe("node:crypto X509Certificate accepts the certificates", () => {
  for (const [rootCurve, caCurve, leafCurve] of [
    ["P-256", "P-256", "P-256"],
    ["P-384", "P-384", "P-384"],
    ["P-384", "P-256", "P-384"],
    ["P-256", "P-384", "P-256"],
  ] as const) {
    it(`root ${rootCurve} → CA ${caCurve} → leaf ${leafCurve}`, () => {
      const pki = devPki(rootCurve, caCurve, leafCurve);
      const root = new X509Certificate(pki.rootDer);
      const ca = new X509Certificate(pki.caDer);
      const leaf = new X509Certificate(derToPem(pki.leafDer));
      assert.deepEqual(new Uint8Array(leaf.raw), pki.leafDer);
      assert.equal(root.subject, "CN=Dev SGX Root CA\nO=Dev\nL=Santa Clara\nST=CA\nC=US");
      assert.equal(leaf.subject, "CN=Intel SGX PCK Certificate\nO=Dev\nOU=unit\nL=Santa Clara\nST=CA\nC=US");
      assert.equal(leaf.issuer, ca.subject);
      assert.equal(new Date(leaf.validFrom).toISOString(), NB.toISOString());
      assert.equal(new Date(leaf.validTo).toISOString(), NA.toISOString());
      assert.equal(root.ca, true);
      assert.equal(ca.ca, true);
      assert.equal(leaf.ca, false);
      assert.equal(root.verify(pki.rootKey.publicKey), true);
      assert.equal(ca.verify(pki.rootKey.publicKey), true);
      assert.equal(leaf.verify(pki.caKey.publicKey), true);
      assert.equal(leaf.verify(pki.rootKey.publicKey), false);
      assert.equal(root.checkIssued(root), true);
      assert.equal(ca.checkIssued(root), true);
      assert.equal(leaf.checkIssued(ca), true);
      assert.equal(leaf.checkIssued(root), false);
      assert.equal(leaf.checkPrivateKey(pki.leafKey.privateKey), true);
      assert.equal(parseCertificate(pki.caDer).signatureAlgorithm, rootCurve === "P-256" ? OID.ecdsaWithSha256 : OID.ecdsaWithSha384);
      assert.equal(parseCertificate(pki.leafDer).signatureAlgorithm, caCurve === "P-256" ? OID.ecdsaWithSha256 : OID.ecdsaWithSha384);
    });
  }
});

// ---- the repo's path validation -----------------------------------------------------------------

describe("validatePath accepts a chain built here", () => {
  it("root → CA → leaf with the dev root as an explicit trust anchor", () => {
    const pki = devPki("P-384", "P-256", "P-256");
    const root = parseCertificate(pki.rootDer);
    const ca = parseCertificate(pki.caDer);
    const leaf = parseCertificate(pki.leafDer);
    const r = validatePath(leaf, [leaf, root, ca], [{ cert: root, intel: false }], AT);
    assert.ok(r.ok, r.ok ? "" : r.reason);
    assert.deepEqual(
      r.value.path.map((c) => c.subjectText),
      [leaf.subjectText, ca.subjectText],
    );
    assert.equal(r.value.anchor.intel, false);
    // The same chain under another root of the same name does not validate.
    const other = devPki("P-384", "P-256", "P-256");
    const r2 = validatePath(leaf, [leaf, ca], [{ cert: parseCertificate(other.rootDer), intel: false }], AT);
    assert.equal(r2.ok, false);
    // Nor outside the validity window.
    assert.equal(validatePath(leaf, [leaf, ca], [{ cert: root, intel: false }], new Date("2040-01-01T00:00:00Z")).ok, false);
  });
});

// ---- CRLs ---------------------------------------------------------------------------------------

describe("buildCrl", () => {
  for (const curve of ["P-256", "P-384"] as const) {
    it(`${curve}: v2 CRL with revoked entries, CRL number and AKI, verifies under the issuer key`, () => {
      const k = ec(curve);
      const issuer: Name = [
        ["CN", "Dev SGX PCK Processor CA"],
        ["O", "Dev"],
        ["C", "US"],
      ];
      const aki = keyIdentifier(k.publicKey);
      const thisUpdate = new Date("2025-06-19T10:23:18Z");
      const nextUpdate = new Date("2025-07-19T10:23:18Z");
      const der = buildCrl({
        issuer,
        signingKey: k.privateKey,
        thisUpdate,
        nextUpdate,
        revoked: [
          { serial: h("6fc34e5023e728923435d61aa4b83c618166ad35"), date: thisUpdate, reason: 1 },
          { serial: h("efae6e9715fca13b87e333e8261ed6d990a926ad"), date: new Date("2060-01-01T00:00:00Z") },
          { serial: h("0001"), date: thisUpdate },
        ],
        crlNumber: 300,
        authorityKeyId: aki,
      });
      const crl = parseCrl(der);
      assert.equal(crl.version, 2);
      assert.equal(crl.signatureAlgorithm, curve === "P-256" ? OID.ecdsaWithSha256 : OID.ecdsaWithSha384);
      assert.deepEqual(crl.issuer, encodeName(issuer));
      assert.equal(crl.issuerText, "CN=Dev SGX PCK Processor CA,O=Dev,C=US");
      assert.equal(crl.thisUpdate.toISOString(), thisUpdate.toISOString());
      assert.equal(crl.nextUpdate?.toISOString(), nextUpdate.toISOString());
      assert.deepEqual(
        [...crl.revoked].map(([s, d]) => [s, d.toISOString()]),
        [
          ["6fc34e5023e728923435d61aa4b83c618166ad35", thisUpdate.toISOString()],
          ["efae6e9715fca13b87e333e8261ed6d990a926ad", "2060-01-01T00:00:00.000Z"],
          ["01", thisUpdate.toISOString()],
        ],
      );
      assert.equal(hex(crl.crlNumber!), "012c");
      assert.deepEqual(crl.authorityKeyId, aki);
      assert.deepEqual(
        crl.extensions.map((e) => [e.oid, e.critical]),
        [
          [OID.crlNumber, false],
          [OID.authorityKeyId, false],
        ],
      );
      assert.ok(verify(ecdsaSignatureHash(crl.signatureAlgorithm), crl.tbs, k.publicKey, crl.signature));
      assert.ok(!verify(ecdsaSignatureHash(crl.signatureAlgorithm), crl.tbs, ec(curve).publicKey, crl.signature));
      // The reason code entry extension, as Intel writes it.
      assert.ok(Buffer.from(der).includes(Buffer.from("300c300a0603551d1504030a0101", "hex")));
    });
  }

  it("no revoked certificates: the list is absent; CRL number defaults to 1; no AKI unless given", () => {
    const k = ec("P-256");
    const der = buildCrl({ issuer: [["CN", "x"]], signingKey: k.privateKey, thisUpdate: NB, nextUpdate: NA });
    const crl = parseCrl(der);
    assert.equal(crl.revoked.size, 0);
    assert.equal(hex(crl.crlNumber!), "01");
    assert.equal(crl.authorityKeyId, null);
    const tbs = readExactTlv(crl.tbs);
    assert.deepEqual(
      children(crl.tbs, tbs).map((t) => t.tag),
      [Tag.INTEGER, Tag.SEQUENCE, Tag.SEQUENCE, Tag.UTC_TIME, Tag.UTC_TIME, 0xa0],
    );
    assert.ok(verify("sha256", crl.tbs, k.publicKey, crl.signature));
    throwsInput(() => buildCrl({ issuer: [["CN", "x"]], signingKey: k.publicKey, thisUpdate: NB, nextUpdate: NA }), "X509_BUILD_KEY");
    throwsInput(() => buildCrl({ issuer: [["CN", "x"]], signingKey: k.privateKey, thisUpdate: NA, nextUpdate: NB }), "X509_BUILD");
    throwsInput(() => buildCrl({ issuer: [["CN", "x"]], signingKey: k.privateKey, thisUpdate: NB, nextUpdate: NA, revoked: [{ serial: h(""), date: NB }] }), "X509_BUILD");
    throwsInput(() => buildCrl({ issuer: [["CN", "x"]], signingKey: k.privateKey, thisUpdate: NB, nextUpdate: NA, revoked: [{ serial: h("01"), date: NB, reason: 7 }] }), "X509_BUILD");
    throwsInput(() => buildCrl({ issuer: [["CN", "x"]], signingKey: k.privateKey, thisUpdate: NB, nextUpdate: NA, crlNumber: -1 }), "X509_BUILD");
  });
});

// ---- PEM ----------------------------------------------------------------------------------------

describe("derToPem", () => {
  it("64-character lines that pemBlocks and Node read back", () => {
    const pki = devPki("P-256", "P-256", "P-256");
    const pem = derToPem(pki.leafDer);
    const lines = pem.split("\n");
    assert.equal(lines[0], "-----BEGIN CERTIFICATE-----");
    assert.equal(lines.at(-2), "-----END CERTIFICATE-----");
    assert.equal(lines.at(-1), "");
    const body = lines.slice(1, -2);
    assert.ok(body.slice(0, -1).every((l) => l.length === 64));
    assert.ok(body.at(-1)!.length <= 64 && body.at(-1)!.length > 0);
    assert.deepEqual(pemBlocks(pem), [pki.leafDer]);
    assert.deepEqual(new Uint8Array(new X509Certificate(pem).raw), pki.leafDer);
    const crl = buildCrl({ issuer: [["CN", "x"]], signingKey: pki.caKey.privateKey, thisUpdate: NB, nextUpdate: NA });
    assert.deepEqual(pemBlocks(derToPem(crl, "X509 CRL"), "X509 CRL"), [crl]);
    // Exactly 48 bytes: one full line, no empty line.
    assert.equal(derToPem(new Uint8Array(48), "X"), `-----BEGIN X-----\n${"A".repeat(64)}\n-----END X-----\n`);
  });
});

// ---- TLS ----------------------------------------------------------------------------------------

describe("TLS 1.3 with a certificate built here", () => {
  it("the client receives exactly the DER bytes, 5 KB opaque raw-OID extension included", async () => {
    const k = ec("P-384");
    const opaque = new Uint8Array(5 * 1024);
    for (let i = 0; i < opaque.length; i++) opaque[i] = (i * 131 + 7) & 0xff;
    const der = buildCertificate({
      subject: [
        ["CN", "attestable-mcp RA-TLS"],
        ["O", "dev"],
        ["C", "US"],
      ],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 24 * 3600_000),
      publicKey: k.publicKey,
      signingKey: k.privateKey,
      extensions: [basicConstraints({ ca: false }), { oid: { raw: GRAMINE_LEGACY_OID_ELEMENT }, critical: false, value: opaque }],
    });
    const server = tls.createServer({
      key: k.privateKey.export({ format: "pem", type: "pkcs8" }),
      cert: derToPem(der),
      minVersion: "TLSv1.3",
    });
    const sockets = new Set<tls.TLSSocket>();
    server.on("secureConnection", (s) => {
      sockets.add(s);
      s.on("error", () => {});
      s.end("hello");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const { raw, protocol, data } = await new Promise<{ raw: Buffer; protocol: string | null; data: string }>((resolve, reject) => {
        const c = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, minVersion: "TLSv1.3" });
        let data = "";
        let raw: Buffer | undefined;
        let protocol: string | null = null;
        c.on("secureConnect", () => {
          raw = c.getPeerCertificate().raw;
          protocol = c.getProtocol();
        });
        c.on("data", (d: Buffer) => (data += d.toString()));
        c.on("end", () => {
          c.destroy();
          if (raw === undefined) reject(new Error("no peer certificate"));
          else resolve({ raw, protocol, data });
        });
        c.on("error", reject);
      });
      assert.equal(protocol, "TLSv1.3");
      assert.equal(data, "hello");
      assert.deepEqual(new Uint8Array(raw), der);
      const got = parseCertificate(new Uint8Array(raw));
      const ext = got.extensions.find((e) => hex(e.oidBytes) === hex(GRAMINE_LEGACY_OID_ELEMENT))!;
      assert.equal(ext.critical, false);
      assert.deepEqual(ext.value, opaque);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// ---- the SGX extension ----------------------------------------------------------------------------

describe("buildSgxExtension", () => {
  const base = {
    ppid: new Uint8Array(16).fill(0xaa),
    tcbComponents: [255, 128, 127, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    pceSvn: 65535,
    cpuSvn: new Uint8Array(16).fill(0x80),
    pceId: h("0100"),
    fmspc: h("00906ed50000"),
    sgxType: 2,
  };

  it("round trips every field, Platform CA fields included", () => {
    const value = encodeSgxExtension({ ...base, platformInstanceId: new Uint8Array(16).fill(7), configuration: { dynamicPlatform: true, cachedKeys: false, smtEnabled: true } });
    const p = parseSgxExtensionValue(value);
    assert.deepEqual(p.tcbComponents, base.tcbComponents);
    assert.equal(p.pceSvn, 65535);
    assert.equal(p.sgxType, 2);
    assert.deepEqual(p.platformInstanceId, new Uint8Array(16).fill(7));
    assert.deepEqual(p.configuration, { dynamicPlatform: true, cachedKeys: false, smtEnabled: true });
    assert.deepEqual(parseSgxExtensionValue(encodeSgxExtension({ ...base, configuration: { cachedKeys: true } })).configuration, { cachedKeys: true });
    assert.deepEqual(buildSgxExtension(base).value, encodeSgxExtension(base));
  });

  it("refuses values Intel's layout cannot hold", () => {
    throwsInput(() => encodeSgxExtension({ ...base, ppid: new Uint8Array(15) }), "SGX_EXTENSION_BUILD", /ppid/);
    throwsInput(() => encodeSgxExtension({ ...base, tcbComponents: base.tcbComponents.slice(1) }), "SGX_EXTENSION_BUILD", /16 values/);
    throwsInput(() => encodeSgxExtension({ ...base, tcbComponents: [256, ...base.tcbComponents.slice(1)] }), "SGX_EXTENSION_BUILD", /tcbComponents\[0\]/);
    throwsInput(() => encodeSgxExtension({ ...base, pceSvn: 65536 }), "SGX_EXTENSION_BUILD", /pceSvn/);
    throwsInput(() => encodeSgxExtension({ ...base, cpuSvn: new Uint8Array(17) }), "SGX_EXTENSION_BUILD", /cpuSvn/);
    throwsInput(() => encodeSgxExtension({ ...base, pceId: new Uint8Array(3) }), "SGX_EXTENSION_BUILD", /pceId/);
    throwsInput(() => encodeSgxExtension({ ...base, fmspc: new Uint8Array(5) }), "SGX_EXTENSION_BUILD", /fmspc/);
    throwsInput(() => encodeSgxExtension({ ...base, sgxType: -1 }), "SGX_EXTENSION_BUILD", /sgxType/);
  });
});

// ---- Intel's own certificates and CRLs, rebuilt byte for byte -------------------------------------

/** A Name built from a certificate's RDNSequence (one attribute per RDN, as Intel writes). */
function nameOf(der: Uint8Array): Name {
  const ATTRS: Record<string, NameAttribute> = { "2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST" };
  return children(der, readExactTlv(der)).map((rdn) => {
    const avas = children(der, rdn);
    assert.equal(avas.length, 1);
    const [type, value] = children(der, avas[0]!);
    const attr = ATTRS[readOid(der, type!)];
    assert.ok(attr !== undefined);
    return [attr, readDisplayString(der, value!)] as [NameAttribute, string];
  });
}

/** The single URI of a cRLDistributionPoints value. */
function crlUrl(value: Uint8Array): string {
  let t = readExactTlv(value);
  for (let i = 0; i < 4; i++) t = children(value, t)[0]!;
  assert.equal(t.tag, 0x86);
  return Buffer.from(value.subarray(t.contentStart, t.contentEnd)).toString("latin1");
}

/** Our builders' ExtensionSpecs for a parsed certificate's extensions (throws on anything else). */
function rebuildExtensions(c: Certificate): ExtensionSpec[] {
  return c.extensions.map((e): ExtensionSpec => {
    let spec: ExtensionSpec;
    switch (e.oid) {
      case OID.authorityKeyId:
        spec = authorityKeyIdentifier(c.authorityKeyId!);
        break;
      case OID.subjectKeyId:
        spec = subjectKeyIdentifier({ keyId: c.subjectKeyId! });
        break;
      case "2.5.29.31":
        spec = crlDistributionPoint(crlUrl(e.value));
        break;
      case OID.keyUsage: {
        const bits = Object.fromEntries(Object.entries(c.keyUsage!).filter(([, v]) => v)) as KeyUsageBits;
        spec = keyUsage(bits);
        break;
      }
      case OID.basicConstraints:
        spec = basicConstraints(c.basicConstraints!);
        break;
      case SGX_EXTENSION_OID:
        spec = buildSgxExtension(parsePckExtension(c));
        break;
      default:
        throw new Error(`unexpected extension ${e.oid} in ${c.subjectText}`);
    }
    assert.equal(spec.critical === true, e.critical, `${c.subjectText} ${e.oid} criticality`);
    return spec;
  });
}

function intelCertificates(): { name: string; cert: Certificate }[] {
  const seen = new Set<string>();
  const out: { name: string; cert: Certificate }[] = [];
  const add = (name: string, der: Uint8Array): void => {
    const key = hex(der);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ name, cert: parseCertificate(der) });
  };
  const quotes = ["sgx/phala", "sgx/mobilecoin", "sgx/automata", "sgx/occlum", "sgx/fortanix", "tdx/phala-v4", "tdx/phala-v5", "tdx/gcp-spr"];
  for (const dir of quotes) {
    for (const f of readdirSync(join(VECTORS, dir))) {
      if (!/\.(bin|dat)$/.test(f)) continue;
      pemBlocks(bytes(`${dir}/${f}`)).forEach((d, i) => add(`${dir}/${f}#${i}`, d));
    }
    let coll: string[] = [];
    try {
      coll = readdirSync(join(VECTORS, dir, "collateral"));
    } catch {
      /* none */
    }
    for (const f of coll.filter((x) => x.endsWith("-issuer-chain.pem"))) pemBlocks(text(`${dir}/collateral/${f}`)).forEach((d, i) => add(`${dir}/collateral/${f}#${i}`, d));
  }
  add("roots/intel-sgx-root-ca.pem", pemBlocks(text("roots/intel-sgx-root-ca.pem"))[0]!);
  add("roots/intel-sgx-root-ca-2018-2033.der", bytes("roots/intel-sgx-root-ca-2018-2033.der"));
  return out;
}

function issuerKey(c: Certificate, all: readonly Certificate[]): KeyObject {
  for (const i of all) {
    if (hex(i.subject) !== hex(c.issuer)) continue;
    const key = createPublicKey({ key: Buffer.from(i.spki), format: "der", type: "spki" });
    if (verify(ecdsaSignatureHash(c.signatureAlgorithm), c.tbs, key, c.signature)) return key;
  }
  throw new Error(`no issuer for ${c.subjectText}`);
}

describe("Intel's certificates and CRLs rebuilt byte for byte", () => {
  it("the SGX extension of the phala PCK leaf: rebuilt from parsePckExtension, identical extnValue", () => {
    const leaf = pemBlocks(bytes("sgx/phala/quote.bin"))
      .map((d) => parseCertificate(d))
      .find((c) => c.subjectText.startsWith("CN=Intel SGX PCK Certificate,"))!;
    const ext = leaf.extensions.find((e) => e.oid === SGX_EXTENSION_OID)!;
    const p = parsePckExtension(leaf);
    const built = buildSgxExtension({
      ppid: p.ppid,
      tcbComponents: p.tcbComponents,
      pceSvn: p.pceSvn,
      cpuSvn: p.cpuSvn,
      pceId: p.pceId,
      fmspc: p.fmspc,
      sgxType: p.sgxType,
    });
    assert.equal(built.oid, SGX_EXTENSION_OID);
    assert.equal(built.critical, false);
    assert.equal(ext.critical, false);
    assert.equal(hex(built.value), hex(ext.value));
    assert.deepEqual(parseSgxExtensionValue(built.value), p);
  });

  it("every Intel certificate in the vectors: TBS rebuilt identical, Intel's signature verifies over it", () => {
    const all = intelCertificates();
    const certs = all.map((x) => x.cert);
    const intel = all.filter((x) => x.cert.issuerText.includes("O=Intel Corporation"));
    assert.ok(intel.length >= 10, `${intel.length} Intel certificates`);
    let platform = 0;
    for (const { name, cert } of intel) {
      const key = issuerKey(cert, certs);
      if (cert.subjectText.startsWith("CN=Intel SGX PCK Certificate,") && cert.issuerText.includes("Platform CA")) {
        const p = parsePckExtension(cert);
        if (p.platformInstanceId !== undefined || p.configuration !== undefined) platform++;
      }
      const tbs = buildTbsCertificate({
        subject: nameOf(cert.subject),
        issuer: nameOf(cert.issuer),
        serial: cert.serial,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        publicKey: createPublicKey({ key: Buffer.from(cert.spki), format: "der", type: "spki" }),
        signingKey: key,
        extensions: rebuildExtensions(cert),
      });
      assert.equal(hex(tbs), hex(cert.tbs), name);
      assert.ok(verify(ecdsaSignatureHash(cert.signatureAlgorithm), tbs, key, cert.signature), name);
    }
    assert.ok(platform >= 1, "at least one Platform CA leaf with PlatformInstanceID / Configuration");
  });

  it("every Intel CRL in the vectors: TBS rebuilt identical (reason code keyCompromise on each entry)", () => {
    const certs = intelCertificates().map((x) => x.cert);
    let n = 0;
    for (const dir of ["sgx/phala", "sgx/mobilecoin", "sgx/automata", "tdx/phala-v4", "tdx/phala-v5", "tdx/gcp-spr"]) {
      for (const f of ["pck-crl.der", "root-ca-crl.der"]) {
        const path = `${dir}/collateral/${f}`;
        const crl = parseCrl(bytes(path));
        const issuer = certs.find((c) => hex(c.subject) === hex(crl.issuer))!;
        const key = createPublicKey({ key: Buffer.from(issuer.spki), format: "der", type: "spki" });
        assert.deepEqual(
          crl.extensions.map((e) => e.oid).filter((o) => o !== OID.crlNumber && o !== OID.authorityKeyId),
          [],
          path,
        );
        const tbs = buildTbsCertList({
          issuer: nameOf(crl.issuer),
          signingKey: key,
          thisUpdate: crl.thisUpdate,
          nextUpdate: crl.nextUpdate!,
          revoked: [...crl.revoked].map(([s, date]) => ({ serial: h(s), date, reason: 1 })),
          crlNumber: BigInt(`0x${hex(crl.crlNumber!)}`),
          ...(crl.authorityKeyId ? { authorityKeyId: crl.authorityKeyId } : {}),
        });
        assert.equal(hex(tbs), hex(crl.tbs), path);
        assert.ok(verify(ecdsaSignatureHash(crl.signatureAlgorithm), tbs, key, crl.signature), path);
        n++;
      }
    }
    assert.equal(n, 12);
  });
});
