import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeCbor, encodeCbor } from "../../../proxy/evidence/ratls/cbor.js";
import { CborError } from "../../../proxy/core/errors.js";
import { h, hex } from "../../support/der.js";

const refuses = (bytes: string, code: string) =>
  assert.throws(
    () => decodeCbor(h(bytes)),
    (e: unknown) => e instanceof CborError && e.code === code,
    `${bytes} → ${code}`,
  );

describe("CBOR decoder", () => {
  it("decodes the RA-TLS shapes: tag 60000 over [bstr, bstr], a claims map, the pubkey-hash array", () => {
    const claims = h("a1 6b 7075626b65792d68617368 58 24 82 01 5820" + "11".repeat(32));
    const v = decodeCbor(claims);
    assert.ok(v instanceof Map);
    const ph = v.get("pubkey-hash");
    assert.ok(ph instanceof Uint8Array);
    assert.deepEqual(decodeCbor(ph), [1, h("11".repeat(32))]);
    const tagged = decodeCbor(h("d9ea60 82 43 010203 42 0405"));
    assert.deepEqual(tagged, { tag: 60000, value: [h("010203"), h("0405")] });
  });
  it("integers of every head size, negatives, simple values", () => {
    assert.equal(decodeCbor(h("17")), 23);
    assert.equal(decodeCbor(h("1818")), 24);
    assert.equal(decodeCbor(h("190100")), 256);
    assert.equal(decodeCbor(h("1a00010000")), 65536);
    assert.equal(decodeCbor(h("1b001fffffffffffff")), Number.MAX_SAFE_INTEGER);
    assert.equal(decodeCbor(h("1bffffffffffffffff")), 0xffffffffffffffffn);
    assert.equal(decodeCbor(h("20")), -1);
    assert.equal(decodeCbor(h("3bffffffffffffffff")), -0x10000000000000000n);
    assert.deepEqual([decodeCbor(h("f4")), decodeCbor(h("f5")), decodeCbor(h("f6")), decodeCbor(h("f7"))], [false, true, null, undefined]);
    assert.equal(decodeCbor(h("63616263")), "abc");
  });
  it("refuses indefinite lengths, trailing bytes, duplicate keys, floats, bad UTF-8, truncation, deep nesting", () => {
    refuses("5f 41 00 ff", "CBOR_INDEFINITE");
    refuses("9f ff", "CBOR_INDEFINITE");
    refuses("01 00", "CBOR_TRAILING");
    refuses("a2 6161 01 6161 02", "CBOR_DUPLICATE_KEY");
    refuses("a1 80 01", "CBOR_MAP_KEY");
    refuses("fa 3f800000", "CBOR_UNSUPPORTED");
    refuses("f8 20", "CBOR_UNSUPPORTED");
    refuses("1c", "CBOR_RESERVED");
    refuses("62 c328", "CBOR_UTF8");
    refuses("58 24 00", "CBOR_TRUNCATED");
    refuses("9a ffffffff", "CBOR_TRUNCATED");
    refuses("", "CBOR_TRUNCATED");
    refuses("81".repeat(20) + "00", "CBOR_DEPTH");
  });
  it("every truncation of a real tagged-evidence value throws CborError, nothing else", () => {
    const v = encodeCbor({ tag: 60000, value: [new Uint8Array(300).fill(7), encodeCbor(new Map([["pubkey-hash", encodeCbor([1, new Uint8Array(32)])]]))] });
    for (let n = 0; n < v.length; n++) assert.throws(() => decodeCbor(v.subarray(0, n)), CborError);
    assert.doesNotThrow(() => decodeCbor(v));
  });
});

describe("CBOR encoder", () => {
  it("shortest heads; round trip", () => {
    assert.equal(hex(encodeCbor(23)), "17");
    assert.equal(hex(encodeCbor(24)), "1818");
    assert.equal(hex(encodeCbor(-1)), "20");
    assert.equal(hex(encodeCbor(new Uint8Array(32))).slice(0, 4), "5820");
    assert.equal(hex(encodeCbor({ tag: 60000, value: [] })), "d9ea6080");
    const v = new Map<string, unknown>([
      ["pubkey-hash", h("8201")],
      ["nonce", "x"],
    ]);
    assert.deepEqual(decodeCbor(encodeCbor(v as never)), v);
  });
});
