import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DerSeq,
  MAX_DEPTH,
  Tag,
  checkDer,
  children,
  contentOf,
  decodeOid,
  readBitString,
  readBitStringBytes,
  readBoolean,
  readDisplayString,
  readEnumerated,
  readExactTlv,
  readNull,
  readOctetString,
  readOid,
  readSmallUnsigned,
  readTime,
  readTlv,
  readUnsigned,
} from "../../../proxy/evidence/asn1/der.js";
import { DerError } from "../../../proxy/core/errors.js";
import { enc, h, hex, throwsDer } from "../../support/der.js";

function one(hex: string): { buf: Uint8Array; tlv: ReturnType<typeof readTlv> } {
  const buf = h(hex);
  return { buf, tlv: readExactTlv(buf) };
}

describe("readTlv", () => {
  it("reads short and long form headers", () => {
    const t = readTlv(h("300302 0105"), 0);
    assert.equal(t.tag, 0x30);
    assert.equal(t.number, 0x10);
    assert.equal(t.class, "universal");
    assert.equal(t.constructed, true);
    assert.equal(t.headerLength, 2);
    assert.equal(t.contentStart, 2);
    assert.equal(t.contentEnd, 5);
    assert.equal(t.end, 5);

    const content = new Uint8Array(200).fill(7);
    const long = enc(0x04, content);
    const l = readTlv(long, 0);
    assert.equal(l.headerLength, 3);
    assert.equal(l.contentEnd - l.contentStart, 200);
    assert.equal(l.constructed, false);

    const big = enc(0x04, new Uint8Array(70000));
    assert.equal(readTlv(big, 0).headerLength, 5);

    const ctx = readTlv(h("a0 03 020102"), 0);
    assert.equal(ctx.class, "context");
    assert.equal(ctx.number, 0);
    assert.equal(ctx.constructed, true);
    assert.equal(readTlv(h("82 01 ff"), 0).class, "context");
    assert.equal(readTlv(h("41 00"), 0).class, "application");
    assert.equal(readTlv(h("c1 00"), 0).class, "private");
  });

  it("reads at an offset, within an end", () => {
    const buf = h("ffff 0401aa ffff");
    const t = readTlv(buf, 2, 5);
    assert.equal(hex(contentOf(buf, t)), "aa");
  });

  it("refuses indefinite length", () => throwsDer(() => readTlv(h("3080 0500 0000"), 0), "DER_INDEFINITE"));
  it("refuses a long form for a short length", () => throwsDer(() => readTlv(h("3081 05 0203010001"), 0), "DER_LENGTH"));
  it("refuses a length with a leading zero octet", () => throwsDer(() => readTlv(h("0482 0085" + "00".repeat(0x85)), 0), "DER_LENGTH"));
  it("refuses lengths of more than four octets", () => throwsDer(() => readTlv(h("0485 0000000001 00"), 0), "DER_LENGTH"));
  it("refuses the reserved length octet 0xff", () => throwsDer(() => readTlv(h("04ff 00"), 0), "DER_LENGTH"));
  it("refuses high tag number form", () => throwsDer(() => readTlv(h("1f81 00 00"), 0), "DER_TAG"));
  it("refuses end-of-contents octets", () => throwsDer(() => readTlv(h("0000"), 0), "DER_TAG"));
  it("refuses an empty input and a missing length octet", () => {
    throwsDer(() => readTlv(new Uint8Array(0), 0), "DER_TRUNCATED");
    throwsDer(() => readTlv(h("30"), 0), "DER_TRUNCATED");
    throwsDer(() => readTlv(h("3082 01"), 0), "DER_TRUNCATED");
  });
  it("refuses content running past the data (DER_TRUNCATED) or past the enclosing element (DER_LENGTH)", () => {
    throwsDer(() => readTlv(h("0405 aabbcc"), 0), "DER_TRUNCATED");
    throwsDer(() => readTlv(h("0403 aabbcc ff"), 0, 4), "DER_LENGTH");
    throwsDer(() => children(h("3003 0402 aabb"), readTlv(h("3003 0402 aabb"), 0, 3)), "DER_LENGTH");
  });
  it("refuses offsets outside the buffer as DerError", () => {
    throwsDer(() => readTlv(h("0500"), 5), "DER_RANGE");
    throwsDer(() => readTlv(h("0500"), 0, 9), "DER_RANGE");
    throwsDer(() => readTlv(h("0500"), -1), "DER_RANGE");
    throwsDer(() => readTlv(h("0500"), 0.5), "DER_RANGE");
  });
  it("names the element in the message and reports the offset", () => {
    try {
      readTlv(h("ff 3080"), 1, 3, 0, "certificate", "tbsCertificate");
      assert.fail("no error");
    } catch (e) {
      assert.ok(e instanceof DerError);
      assert.match(e.message, /^certificate\.tbsCertificate: indefinite length/);
      assert.equal(e.offset, 2);
    }
  });
  it("readExactTlv refuses trailing bytes", () => throwsDer(() => readExactTlv(h("0500 00")), "DER_TRAILING"));
});

describe("children, checkDer, DerSeq", () => {
  it("children covers the content exactly", () => {
    const buf = h("3008 0201 05 0403 aabbcc");
    const kids = children(buf, readTlv(buf, 0));
    assert.deepEqual(
      kids.map((k) => k.tag),
      [0x02, 0x04],
    );
    assert.equal(kids[1]!.depth, 1);
    throwsDer(() => children(buf, kids[0]!), "DER_TAG");
  });

  function nested(depth: number): Uint8Array {
    let b = h("0500");
    for (let i = 0; i < depth; i++) b = enc(0x30, b);
    return b;
  }
  it(`checkDer accepts nesting to depth ${MAX_DEPTH} and refuses deeper`, () => {
    checkDer(nested(MAX_DEPTH));
    throwsDer(() => checkDer(nested(MAX_DEPTH + 1)), "DER_DEPTH");
    throwsDer(() => checkDer(nested(200)), "DER_DEPTH");
  });
  it("checkDer finds a bad element deep inside", () => {
    throwsDer(() => checkDer(h("3006 3004 3002 3080")), "DER_INDEFINITE");
    throwsDer(() => checkDer(h("3007 3003 0402 aa 0500")), "DER_LENGTH");
    throwsDer(() => checkDer(h("3005 3003 0402 aa")), "DER_TRUNCATED");
  });

  it("DerSeq reads a fixed schema and reports with the given code", () => {
    const buf = h("300b 020101 a003 020102 0401ff");
    const r = new DerSeq(buf, readTlv(buf, 0), "thing", "CRL_STRUCTURE");
    assert.equal(readSmallUnsigned(buf, r.next(Tag.INTEGER, "a")), 1);
    assert.equal(r.optional(0xa1, "missing-optional"), null);
    const ctx = r.optional(0xa0, "b");
    assert.ok(ctx);
    assert.equal(r.peekTag(), 0x04);
    throwsDer(() => r.next(Tag.INTEGER, "c"), "CRL_STRUCTURE");
    r.any("c");
    assert.equal(r.done, true);
    r.finish();
    throwsDer(() => r.any("d"), "CRL_STRUCTURE");

    const r2 = new DerSeq(buf, readTlv(buf, 0), "thing", "CRL_STRUCTURE");
    r2.any("a");
    throwsDer(() => r2.finish(), "CRL_STRUCTURE");
    throwsDer(() => new DerSeq(buf, readTlv(h("0400"), 0), "p", "CRL_STRUCTURE"), "CRL_STRUCTURE");
  });
});

describe("OBJECT IDENTIFIER", () => {
  it("decodes common OIDs", () => {
    assert.equal(decodeOid(h("2a8648ce3d040302")), "1.2.840.10045.4.3.2");
    assert.equal(decodeOid(h("2a8648ce3d030107")), "1.2.840.10045.3.1.7");
    assert.equal(decodeOid(h("2b81040022")), "1.3.132.0.34");
    assert.equal(decodeOid(h("551d13")), "2.5.29.19");
    assert.equal(decodeOid(h("2a864886f84d010d01")), "1.2.840.113741.1.13.1");
    assert.equal(decodeOid(h("678105050409")), "2.23.133.5.4.9");
    assert.equal(decodeOid(h("8837")), "2.999");
    assert.equal(decodeOid(h("00")), "0.0");
    assert.equal(decodeOid(h("27")), "0.39");
    assert.equal(decodeOid(h("28")), "1.0");
  });
  it("decodes Gramine's deliberately odd legacy OID without choking", () => {
    // Content bytes 06 09 2A 86 48 86 F8 4D 8A 39 06 (an OID TLV nested in the OID content).
    assert.equal(decodeOid(h("06092a864886f84d8a3906")), "0.6.9.42.840.113741.1337.6");
  });
  it("decodes arcs beyond 2^53 exactly", () => {
    // 2.25.<128-bit UUID as integer>
    const uuid = 0xf81d4fae7dec11d0a76500a0c91e6bf6n;
    const arcs: number[] = [];
    let v = uuid;
    while (v > 0n) {
      arcs.unshift(Number(v & 0x7fn));
      v >>= 7n;
    }
    const bytes = arcs.map((a, i) => (i < arcs.length - 1 ? a | 0x80 : a));
    assert.equal(decodeOid(new Uint8Array([0x69, ...bytes])), `2.25.${uuid}`);
    assert.equal(decodeOid(h("ffffffffffffffffff7f")), `2.${(1n << 70n) - 1n - 80n}`);
  });
  it("refuses empty, truncated and non-minimal encodings", () => {
    throwsDer(() => decodeOid(new Uint8Array(0)), "DER_OID");
    throwsDer(() => decodeOid(h("2a86")), "DER_OID");
    throwsDer(() => decodeOid(h("2a 8048")), "DER_OID");
    throwsDer(() => decodeOid(h("80 01")), "DER_OID");
  });
  it("readOid checks the tag", () => {
    const { buf, tlv } = one("0603 551d13");
    assert.equal(readOid(buf, tlv), "2.5.29.19");
    const bad = one("0403 551d13");
    throwsDer(() => readOid(bad.buf, bad.tlv), "DER_TAG");
  });
});

describe("INTEGER, ENUMERATED, BOOLEAN, NULL", () => {
  it("readUnsigned returns the magnitude, stripping the sign octet", () => {
    let x = one("0201 00");
    assert.equal(hex(readUnsigned(x.buf, x.tlv)), "00");
    x = one("0201 7f");
    assert.equal(hex(readUnsigned(x.buf, x.tlv)), "7f");
    x = one("0202 0080");
    assert.equal(hex(readUnsigned(x.buf, x.tlv)), "80");
    x = one("0215 00 81b77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
    assert.equal(hex(readUnsigned(x.buf, x.tlv)), "81b77732b761e98eb9b963a4abd1e5b9bf5dd8d6");
  });
  it("refuses empty, negative and non-minimal INTEGERs", () => {
    for (const [hex, code] of [
      ["0200", "DER_INTEGER"],
      ["0201 80", "DER_INTEGER"],
      ["0202 ff80", "DER_INTEGER"],
      ["0202 007f", "DER_INTEGER"],
      ["0202 0000", "DER_INTEGER"],
      ["0402 0001", "DER_TAG"],
    ] as const) {
      const x = one(hex);
      throwsDer(() => readUnsigned(x.buf, x.tlv), code);
    }
  });
  it("readSmallUnsigned converts and bounds", () => {
    let x = one("0202 00ff");
    assert.equal(readSmallUnsigned(x.buf, x.tlv, "comp", 255), 255);
    x = one("0202 0100");
    throwsDer(() => readSmallUnsigned(x.buf, x.tlv, "comp", 255), "DER_INTEGER");
    x = one("0207 1fffffffffffff");
    assert.equal(readSmallUnsigned(x.buf, x.tlv), Number.MAX_SAFE_INTEGER);
    x = one("0207 20000000000000");
    throwsDer(() => readSmallUnsigned(x.buf, x.tlv), "DER_INTEGER");
    x = one("0209 00ffffffffffffffff");
    throwsDer(() => readSmallUnsigned(x.buf, x.tlv), "DER_INTEGER");
  });
  it("readEnumerated", () => {
    const x = one("0a01 01");
    assert.equal(readEnumerated(x.buf, x.tlv), 1);
    const y = one("0201 01");
    throwsDer(() => readEnumerated(y.buf, y.tlv), "DER_TAG");
  });
  it("BOOLEAN is one octet, 0x00 or 0xff", () => {
    let x = one("0101 ff");
    assert.equal(readBoolean(x.buf, x.tlv), true);
    x = one("0101 00");
    assert.equal(readBoolean(x.buf, x.tlv), false);
    x = one("0101 01");
    throwsDer(() => readBoolean(x.buf, x.tlv), "DER_BOOLEAN");
    x = one("0102 00ff");
    throwsDer(() => readBoolean(x.buf, x.tlv), "DER_BOOLEAN");
    x = one("0100");
    throwsDer(() => readBoolean(x.buf, x.tlv), "DER_BOOLEAN");
  });
  it("NULL has no content", () => {
    readNull(one("0500").tlv);
    throwsDer(() => readNull(one("0501 00").tlv), "DER_NULL");
  });
});

describe("BIT STRING, OCTET STRING, strings", () => {
  it("BIT STRING with and without unused bits", () => {
    let x = one("0303 00 abcd");
    assert.equal(hex(readBitStringBytes(x.buf, x.tlv)), "abcd");
    x = one("0302 01 06");
    assert.deepEqual({ ...readBitString(x.buf, x.tlv), bytes: hex(readBitString(x.buf, x.tlv).bytes) }, { bytes: "06", unusedBits: 1 });
    throwsDer(() => readBitStringBytes(x.buf, x.tlv), "DER_BITSTRING");
    x = one("0302 01 07"); // unused bit set
    throwsDer(() => readBitString(x.buf, x.tlv), "DER_BITSTRING");
    x = one("0300");
    throwsDer(() => readBitString(x.buf, x.tlv), "DER_BITSTRING");
    x = one("0301 01");
    throwsDer(() => readBitString(x.buf, x.tlv), "DER_BITSTRING");
    x = one("0302 08 00");
    throwsDer(() => readBitString(x.buf, x.tlv), "DER_BITSTRING");
    x = one("0301 00");
    assert.equal(readBitStringBytes(x.buf, x.tlv).length, 0);
  });
  it("OCTET STRING is a subarray (no copy), primitive form only", () => {
    const x = one("0403 010203");
    const v = readOctetString(x.buf, x.tlv);
    assert.equal(v.buffer, x.buf.buffer);
    assert.equal(hex(v), "010203");
    const c = one("2403 040100");
    throwsDer(() => readOctetString(c.buf, c.tlv), "DER_TAG");
  });
  it("display strings", () => {
    const s = (hex: string): string => {
      const x = one(hex);
      return readDisplayString(x.buf, x.tlv);
    };
    assert.equal(s("0c03 " + Buffer.from("Hé").toString("hex")), "Hé");
    assert.equal(s("1302 5553"), "US");
    assert.equal(s("1e04 00480069"), "Hi");
    assert.equal(s("1c04 0001f600"), "\u{1f600}");
    assert.equal(s("1e03 004800"), "#1e03004800");
    assert.equal(s("0201 05"), "#020105");
  });
});

describe("UTCTime and GeneralizedTime", () => {
  const t = (tag: number, s: string): Date => {
    const buf = enc(tag, new Uint8Array(Buffer.from(s, "latin1")));
    return readTime(buf, readExactTlv(buf));
  };
  const U = Tag.UTC_TIME;
  const G = Tag.GENERALIZED_TIME;
  it("UTCTime: YY < 50 is 20YY, otherwise 19YY", () => {
    assert.equal(t(U, "491231235959Z").toISOString(), "2049-12-31T23:59:59.000Z");
    assert.equal(t(U, "500101000000Z").toISOString(), "1950-01-01T00:00:00.000Z");
    assert.equal(t(U, "180521104510Z").toISOString(), "2018-05-21T10:45:10.000Z");
    assert.equal(t(U, "000229000000Z").toISOString(), "2000-02-29T00:00:00.000Z");
  });
  it("GeneralizedTime, including years before 100 and after 2049", () => {
    assert.equal(t(G, "20501231235959Z").toISOString(), "2050-12-31T23:59:59.000Z");
    assert.equal(t(G, "99991231235959Z").toISOString(), "9999-12-31T23:59:59.000Z");
    assert.equal(t(G, "00500102030405Z").getUTCFullYear(), 50);
    assert.equal(t(G, "24000229000000Z").toISOString(), "2400-02-29T00:00:00.000Z");
  });
  it("refuses what DER / RFC 5280 do not allow", () => {
    for (const [tag, s] of [
      [U, "4912312359Z"], // no seconds
      [U, "491231235959"], // no Z
      [U, "491231235959+0000"],
      [U, "491331235959Z"], // month 13
      [U, "490001235959Z"], // month 0
      [U, "490230235959Z"], // Feb 30
      [U, "490229000000Z"], // 2049 is not a leap year
      [U, "490100000000Z"], // day 0
      [U, "491231240000Z"], // hour 24
      [U, "491231236000Z"], // minute 60
      [U, "491231235960Z"], // second 60
      [U, "4912312359 9Z"],
      [U, "-91231235959Z"],
      [G, "20491231235959.5Z"], // fraction
      [G, "2049123123595Z"],
      [G, "21000229000000Z"], // 2100 is not a leap year
      [G, "491231235959Z"], // UTCTime shape in a GeneralizedTime
    ] as const) {
      throwsDer(() => t(tag, s), "DER_TIME");
    }
    const x = one("0401 00");
    throwsDer(() => readTime(x.buf, x.tlv), "DER_TAG");
  });
});
