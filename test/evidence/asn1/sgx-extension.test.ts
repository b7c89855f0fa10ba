import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { children, readTlv } from "../../../proxy/evidence/asn1/der.js";
import { DerError } from "../../../proxy/core/errors.js";
import { SGX_EXTENSION_OID, parsePckExtension, parseSgxExtensionValue } from "../../../proxy/evidence/asn1/sgx-extension.js";
import { pemBlocks } from "../../../proxy/evidence/asn1/pem.js";
import { parseCertificate, type Certificate } from "../../../proxy/evidence/asn1/x509.js";
import { enc, h, hex, throwsDer } from "../../support/der.js";
import { VECTORS } from "../../support/vectors.js";

const bytes = (p: string): Uint8Array => new Uint8Array(readFileSync(join(VECTORS, p)));

/** The PCK leaf of a quote's type-5 certification data, found straight in the quote bytes. */
function pckLeaf(quotePath: string): Certificate {
  const certs = pemBlocks(bytes(quotePath)).map((d) => parseCertificate(d));
  const leaves = certs.filter((c) => c.subjectText.startsWith("CN=Intel SGX PCK Certificate,"));
  assert.equal(leaves.length, 1);
  return leaves[0]!;
}

const CASES = [
  { quote: "sgx/phala/quote.bin", fmspc: "00a067110000", pceSvn: 13, sgxType: 0, comps: [11, 11, 2, 2, 255, 1] },
  { quote: "sgx/mobilecoin/quote.bin", fmspc: "00906ed50000", pceSvn: 13, sgxType: 0, comps: [20, 20, 2, 4, 1, 128, 14] },
  { quote: "sgx/automata/quote.bin", fmspc: "00606a000000", pceSvn: 13, sgxType: 1, comps: [14, 14, 3, 3, 255, 255, 1] },
  { quote: "sgx/occlum/quote.bin", fmspc: "30606a000000", pceSvn: 11, sgxType: 1, comps: [4, 4, 3, 3, 255, 255] },
  { quote: "sgx/fortanix/quote-old-root.bin", fmspc: "00906ea10000", pceSvn: 10, sgxType: 0, comps: [14, 14, 2, 4, 1, 128, 7] },
  { quote: "sgx/fortanix/quote-chain-out-of-order.bin", fmspc: "00906ea10000", pceSvn: 7, sgxType: 0, comps: [6, 6, 2, 4, 1, 128, 1] },
];

describe("parsePckExtension on the PCK certificates inside the quotes", () => {
  for (const c of CASES) {
    it(`${c.quote}: FMSPC ${c.fmspc}`, () => {
      const p = parsePckExtension(pckLeaf(c.quote));
      assert.equal(hex(p.fmspc), c.fmspc);
      assert.equal(hex(p.pceId), "0000");
      assert.equal(p.pceSvn, c.pceSvn);
      assert.equal(p.sgxType, c.sgxType);
      assert.equal(p.ppid.length, 16);
      assert.equal(p.cpuSvn.length, 16);
      assert.equal(p.tcbComponents.length, 16);
      assert.deepEqual(p.tcbComponents, [...c.comps, ...new Array<number>(16 - c.comps.length).fill(0)]);
      // On these platforms the CPUSVN bytes are the SGX TCB components.
      assert.deepEqual([...p.cpuSvn], p.tcbComponents);
      // Scalable (multi-package "Platform CA") certificates carry the instance id and configuration.
      if (c.sgxType === 1) {
        assert.equal(p.platformInstanceId?.length, 16);
        assert.ok(p.configuration);
      } else {
        assert.equal(p.platformInstanceId, undefined);
        assert.equal(p.configuration, undefined);
      }
    });
  }

  it("the FMSPCs agree with expected.json", () => {
    const expected = JSON.parse(readFileSync(join(VECTORS, "expected.json"), "utf8")) as {
      sgxQuotes: { path: string; fmspc: string | null; certDataType: number }[];
    };
    let n = 0;
    for (const e of expected.sgxQuotes) {
      if (e.certDataType !== 5 || e.fmspc === null || e.path.includes("corrupted")) continue;
      assert.equal(hex(parsePckExtension(pckLeaf(e.path)).fmspc), e.fmspc, e.path);
      n++;
    }
    assert.ok(n >= 5);
  });

  it("automata and occlum: platform instance id and configuration values", () => {
    const a = parsePckExtension(pckLeaf("sgx/automata/quote.bin"));
    assert.equal(hex(a.platformInstanceId!), "7f96822f9d6421e505d4f256f65c5338");
    assert.deepEqual(a.configuration, { dynamicPlatform: true, cachedKeys: false, smtEnabled: false });
    assert.equal(hex(a.ppid), "186950b6d8d014d89f0c144d1d90ebad");
    const o = parsePckExtension(pckLeaf("sgx/occlum/quote.bin"));
    assert.deepEqual(o.configuration, { dynamicPlatform: true, cachedKeys: true, smtEnabled: true });
  });

  it("byte fields are views of the certificate", () => {
    const leaf = pckLeaf("sgx/phala/quote.bin");
    const p = parsePckExtension(leaf);
    for (const b of [p.ppid, p.cpuSvn, p.pceId, p.fmspc]) assert.equal(b.buffer, leaf.der.buffer);
    assert.equal(hex(p.ppid), "d04ec06d4e6d92dc90d0ad3cf5ee2ddf");
  });
});

// ---- malformed ----------------------------------------------------------------------------------

/** The SGX extension value of the automata leaf, split into its fields for rebuilding. */
function fields(): { value: Uint8Array; list: Uint8Array[] } {
  const leaf = pckLeaf("sgx/automata/quote.bin");
  const ext = leaf.extensions.find((e) => e.oid === SGX_EXTENSION_OID);
  assert.ok(ext);
  const value = Uint8Array.from(ext.value);
  const list = children(value, readTlv(value, 0)).map((t) => value.subarray(t.start, t.end));
  return { value, list };
}

const oid = (arcs: string): Uint8Array => {
  // 1.2.840.113741.1.13.1 followed by small arcs
  return enc(0x06, h("2a864886f84d010d01"), new Uint8Array(arcs.split(".").filter(Boolean).map(Number)));
};
const field = (arcs: string, value: Uint8Array): Uint8Array => enc(0x30, oid(arcs), value);

describe("parseSgxExtensionValue refuses malformed extensions", () => {
  it("round-trips the real value", () => {
    const { value, list } = fields();
    assert.equal(list.length, 7);
    assert.equal(hex(parseSgxExtensionValue(value).fmspc), "00606a000000");
    assert.deepEqual(enc(0x30, ...list), value);
  });

  it("names a missing required field (PCK_EXTENSION_MISSING)", () => {
    const { list } = fields();
    const names = ["ppid", "tcb", "pceId", "fmspc", "sgxType"];
    names.forEach((name, i) => {
      const without = list.filter((_, j) => j !== i);
      throwsDer(() => parseSgxExtensionValue(enc(0x30, ...without)), "PCK_EXTENSION_MISSING", new RegExp(`\\b${name}\\b`));
    });
    // Optional fields may be absent.
    const p = parseSgxExtensionValue(enc(0x30, ...list.slice(0, 5)));
    assert.equal(p.platformInstanceId, undefined);
    assert.equal(p.configuration, undefined);
  });

  it("names a missing TCB component, PCESVN or CPUSVN", () => {
    const { list } = fields();
    const tcb = list[1]!;
    const [, tcbSeqT] = children(tcb, readTlv(tcb, 0));
    assert.ok(tcbSeqT);
    const comps = children(tcb, tcbSeqT).map((t) => tcb.subarray(t.start, t.end));
    assert.equal(comps.length, 18);
    const rebuilt = (cs: Uint8Array[]): Uint8Array => enc(0x30, list[0]!, field("2", enc(0x30, ...cs)), ...list.slice(2));
    assert.deepEqual(parseSgxExtensionValue(rebuilt(comps)).tcbComponents.slice(0, 7), [14, 14, 3, 3, 255, 255, 1]);
    // Order does not matter: fields are matched by OID.
    assert.deepEqual(parseSgxExtensionValue(rebuilt([...comps].reverse())).tcbComponents.slice(0, 7), [14, 14, 3, 3, 255, 255, 1]);
    throwsDer(() => parseSgxExtensionValue(rebuilt(comps.filter((_, i) => i !== 6))), "PCK_EXTENSION_MISSING", /tcb\.comp07/);
    throwsDer(() => parseSgxExtensionValue(rebuilt(comps.slice(0, 16).concat(comps[17]!))), "PCK_EXTENSION_MISSING", /pcesvn/);
    throwsDer(() => parseSgxExtensionValue(rebuilt(comps.slice(0, 17))), "PCK_EXTENSION_MISSING", /cpusvn/);
    // Out of range, wrong type, duplicated.
    const big = field("2.3", h("02020100"));
    throwsDer(() => parseSgxExtensionValue(rebuilt([...comps.slice(0, 2), big, ...comps.slice(3)])), "PCK_EXTENSION_INVALID", /comp03/);
    const neg = field("2.3", h("0201ff"));
    throwsDer(() => parseSgxExtensionValue(rebuilt([...comps.slice(0, 2), neg, ...comps.slice(3)])), "PCK_EXTENSION_INVALID", /comp03/);
    const str = field("2.3", h("040101"));
    throwsDer(() => parseSgxExtensionValue(rebuilt([...comps.slice(0, 2), str, ...comps.slice(3)])), "PCK_EXTENSION_INVALID", /comp03/);
    throwsDer(() => parseSgxExtensionValue(rebuilt([...comps, comps[0]!])), "PCK_EXTENSION_INVALID", /twice/);
  });

  it("refuses wrong sizes and types", () => {
    const { list } = fields();
    const replace = (i: number, f: Uint8Array): Uint8Array => enc(0x30, ...list.slice(0, i), f, ...list.slice(i + 1));
    throwsDer(() => parseSgxExtensionValue(replace(3, field("4", h("0405 00606a0000")))), "PCK_EXTENSION_INVALID", /fmspc: expected 6 bytes/);
    throwsDer(() => parseSgxExtensionValue(replace(2, field("3", h("0403 000000")))), "PCK_EXTENSION_INVALID", /pceId/);
    throwsDer(() => parseSgxExtensionValue(replace(0, field("1", h("0401 00")))), "PCK_EXTENSION_INVALID", /ppid/);
    throwsDer(() => parseSgxExtensionValue(replace(4, field("5", h("020101")))), "PCK_EXTENSION_INVALID", /sgxType/);
    throwsDer(() => parseSgxExtensionValue(replace(6, field("7", h("0101ff")))), "PCK_EXTENSION_INVALID", /configuration/);
    throwsDer(() => parseSgxExtensionValue(replace(6, field("7", enc(0x30, field("7.1", h("020101")))))), "PCK_EXTENSION_INVALID", /dynamicPlatform/);
    throwsDer(() => parseSgxExtensionValue(enc(0x30, ...list, list[3]!)), "PCK_EXTENSION_INVALID", /twice/);
    throwsDer(() => parseSgxExtensionValue(h("0400")), "PCK_EXTENSION_INVALID");
  });

  it("skips unknown fields", () => {
    const { list } = fields();
    const p = parseSgxExtensionValue(enc(0x30, ...list, field("99", h("0500")), enc(0x30, h("0603551d13"), h("0101ff"))));
    assert.equal(hex(p.fmspc), "00606a000000");
  });

  it("truncated at every length, or any byte corrupted: DerError with a PCK_ code only", () => {
    const { value } = fields();
    for (let n = 0; n < value.length; n++) {
      assert.throws(
        () => parseSgxExtensionValue(value.subarray(0, n)),
        (e: unknown) => e instanceof DerError && e.code.startsWith("PCK_EXTENSION_"),
        `length ${n}`,
      );
    }
    for (let i = 0; i < value.length; i++) {
      for (const v of [0x00, 0x80, 0xff, value[i]! ^ 1]) {
        const m = Uint8Array.from(value);
        m[i] = v;
        try {
          parseSgxExtensionValue(m);
        } catch (e) {
          assert.ok(e instanceof DerError && e.code.startsWith("PCK_EXTENSION_"), `byte ${i} = ${v}: ${String(e)}`);
        }
      }
    }
  });
});

describe("certificates without a PCK SGX extension", () => {
  it("the Intel root: PCK_EXTENSION_MISSING", () => {
    const root = parseCertificate(pemBlocks(readFileSync(join(VECTORS, "roots/intel-sgx-root-ca.pem"), "latin1"))[0]!);
    throwsDer(() => parsePckExtension(root), "PCK_EXTENSION_MISSING", /no SGX extension/);
  });
  it("the Intel SGX SDK RA-TLS certificate reuses the OID for a raw quote: PCK_EXTENSION_INVALID", () => {
    const c = parseCertificate(pemBlocks(readFileSync(join(VECTORS, "ratls/intel-sgxsdk-cert.pem"), "latin1"))[0]!);
    throwsDer(() => parsePckExtension(c), "PCK_EXTENSION_INVALID");
  });
});
