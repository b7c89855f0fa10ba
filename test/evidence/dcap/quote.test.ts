import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { toHex } from "../../../proxy/core/bytes.js";
import { QuoteFormatError } from "../../../proxy/core/errors.js";
import { isDebug, MAX_QUOTE_BYTES, parseQuote } from "../../../proxy/evidence/dcap/quote.js";
import { expected, vector } from "../../support/vectors.js";

describe("parseQuote on the SGX vectors", () => {
  for (const e of expected.sgxQuotes) {
    it(`${e.path}: every field expected.json lists`, () => {
      const q = parseQuote(vector(e.path));
      assert.equal(q.teeType, "SGX");
      assert.equal(q.header.version, 3);
      if (q.teeType !== "SGX") return;
      assert.equal(toHex(q.body.mrEnclave), e.mrenclave);
      assert.equal(toHex(q.body.mrSigner), e.mrsigner);
      assert.equal(q.body.isvProdId, e.isvProdId);
      assert.equal(q.body.isvSvn, e.isvSvn);
      assert.equal(isDebug(q.body.attributes), e.debug);
      assert.equal(toHex(q.body.reportData), e.reportData);
      assert.equal(q.signatureData.certification.type, e.certDataType);
    });
  }

  it("occlum KSS enclave exposes non-zero ISVEXTPRODID / ISVFAMILYID / CONFIGID", () => {
    const q = parseQuote(vector("sgx/occlum/quote.bin"));
    assert.equal(q.teeType, "SGX");
    if (q.teeType !== "SGX") return;
    assert.ok(q.body.isvExtProdId.some((b) => b !== 0));
    assert.ok(q.body.isvFamilyId.some((b) => b !== 0));
    assert.ok(q.body.configId.some((b) => b !== 0));
  });

  it("type 5 certification data holds a NUL-terminated PEM chain", () => {
    const cd = parseQuote(vector("sgx/phala/quote.bin")).signatureData.certification;
    const text = Buffer.from(cd.data).toString("latin1");
    assert.equal(cd.type, 5);
    assert.equal((text.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length, 3);
    assert.equal(cd.data[cd.data.length - 1], 0);
  });
});

describe("parseQuote on the TDX vectors", () => {
  const cases = [
    { path: "tdx/phala-v4/quote.bin", version: 4, bodyType: 2, trailing: 70 },
    { path: "tdx/phala-v5/quote.bin", version: 5, bodyType: 3, trailing: 0 },
    { path: "tdx/gcp-spr/quote-with-trailing-bytes.dat", version: 4, bodyType: 2, trailing: 39 },
  ];
  for (const c of cases) {
    it(`${c.path}: v${c.version}, TD report body type ${c.bodyType}, ${c.trailing} trailing bytes ignored`, () => {
      const bytes = vector(c.path);
      const q = parseQuote(bytes);
      assert.equal(q.teeType, "TDX");
      assert.equal(q.header.version, c.version);
      assert.equal(bytes.length - q.length, c.trailing);
      if (q.teeType !== "TDX") return;
      assert.equal(q.bodyType, c.bodyType);
      assert.equal(q.body.mrTd.length, 48);
      assert.equal(q.body.rtmr.length, 4);
      assert.equal(q.body.reportData.length, 64);
      assert.equal(q.body.mrServiceTd !== undefined, c.bodyType === 3);
      // The QE report and the inner PCK chain come out of certification data type 6.
      assert.equal(q.signatureData.certification.type, 5);
      assert.equal(q.signatureData.qeReportBytes.length, 384);
      // The signed region is header + body (+ v5 body descriptor), exactly.
      assert.equal(q.signedBytes.length, 48 + (c.version === 5 ? 6 : 0) + (c.bodyType === 3 ? 648 : 584));
    });
  }

  it("gcp-spr: the appended bytes are ASCII and excluded from the parse", () => {
    const bytes = vector("tdx/gcp-spr/quote-with-trailing-bytes.dat");
    const q = parseQuote(bytes);
    const tail = bytes.subarray(q.length);
    assert.equal(Buffer.from(tail).toString("latin1"), "\nextra bytes(only for testing purpose)\n");
  });
});

describe("parseQuote refuses malformed input with typed errors", () => {
  const phala = vector("sgx/phala/quote.bin");

  it("every truncation of a real quote throws QuoteFormatError with an offset", () => {
    for (let n = 0; n < phala.length; n++) {
      assert.throws(
        () => parseQuote(phala.subarray(0, n)),
        (e: unknown) => e instanceof QuoteFormatError && typeof e.code === "string" && (e.offset === undefined || e.offset <= n),
        `truncated at ${n}`,
      );
    }
  });

  it("input over 64 KiB is refused before parsing", () => {
    const big = new Uint8Array(MAX_QUOTE_BYTES + 1);
    big.set(phala);
    assert.throws(() => parseQuote(big), { code: "QUOTE_TOO_LARGE" });
  });

  it("bytes after the signature data are ignored (up to the size limit)", () => {
    const padded = new Uint8Array(phala.length + 100).fill(0xab);
    padded.set(phala);
    assert.equal(parseQuote(padded).length, phala.length);
  });

  const patch = (offset: number, bytes: number[]) => {
    const b = Uint8Array.from(phala);
    b.set(bytes, offset);
    return b;
  };
  it("unknown version", () => assert.throws(() => parseQuote(patch(0, [9, 0])), { code: "QUOTE_VERSION_UNSUPPORTED", offset: 0 }));
  it("attestation key type other than ECDSA P-256", () => assert.throws(() => parseQuote(patch(2, [3, 0])), { code: "QUOTE_KEY_TYPE_UNSUPPORTED" }));
  it("v3 with a TDX TEE type", () => assert.throws(() => parseQuote(patch(4, [0x81, 0, 0, 0])), { code: "QUOTE_TEE_TYPE" }));
  it("signature data length past the end", () => assert.throws(() => parseQuote(patch(432, [0xff, 0xff, 0, 0])), { code: "QUOTE_TRUNCATED" }));
  it("signature data length longer than its fields", () => {
    const b = new Uint8Array(phala.length + 4);
    b.set(phala);
    const sigLen = Buffer.from(phala).readUInt32LE(432);
    Buffer.from(b.buffer).writeUInt32LE(sigLen + 4, 432);
    assert.throws(() => parseQuote(b), { code: "QUOTE_LENGTH_MISMATCH" });
  });
  it("certification data size past the end", () => {
    const q = parseQuote(phala);
    const sizeAt = q.signatureData.certification.offset - 4;
    assert.throws(() => parseQuote(patch(sizeAt, [0xff, 0xff, 0xff, 0x7f])), { code: "QUOTE_TRUNCATED" });
  });
  it("not a Uint8Array", () => assert.throws(() => parseQuote("03000200" as unknown as Uint8Array), { code: "QUOTE_INPUT" }));
});
