/**
 * Mutation: flipping any byte of a signed region of a real quote, of its PCK chain, or of any
 * piece of collateral gives ok: false with a named check. Exhaustive over every byte.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { CollateralParts } from "../../../proxy/evidence/dcap/collateral.js";
import { partsFromPcsDirectory } from "../../../proxy/evidence/dcap/collateral-files.js";
import { parseQuote } from "../../../proxy/evidence/dcap/quote.js";
import type { CheckName, Verdict } from "../../../proxy/evidence/verdict.js";
import { verifyQuote } from "../../../proxy/evidence/dcap/verify.js";
import { flipPemDer, flipped, partsToQvl, pemDerLengths } from "../../support/mutate.js";
import { vector, vectorPath } from "../../support/vectors.js";

const AT = new Date("2025-07-19T10:01:17Z");
const QUOTE = vector("sgx/phala/quote.bin");
const Q = parseQuote(QUOTE);

/** Offsets of the quote's regions, measured from the parse of the real quote. */
const off = (sub: Uint8Array) => sub.byteOffset - QUOTE.byteOffset;
const sd = Q.signatureData;
const REGIONS: { name: string; start: number; end: number; expect: CheckName[] }[] = [
  { name: "header and report body", start: 0, end: 432, expect: ["quote.format", "quote.signature"] },
  { name: "quote signature", start: off(sd.signature), end: off(sd.signature) + 64, expect: ["quote.signature"] },
  { name: "attestation key", start: off(sd.attestationKey), end: off(sd.attestationKey) + 64, expect: ["quote.signature"] },
  { name: "QE report", start: off(sd.qeReportBytes), end: off(sd.qeReportBytes) + 384, expect: ["qe.binding", "qe.signature"] },
  { name: "QE report signature", start: off(sd.qeReportSignature), end: off(sd.qeReportSignature) + 64, expect: ["qe.signature"] },
  { name: "QE auth data", start: off(sd.qeAuthData), end: off(sd.qeAuthData) + sd.qeAuthData.length, expect: ["qe.binding"] },
];

function failedAt(v: Verdict, where: string): CheckName {
  assert.equal(v.ok, false, `${where}: accepted`);
  assert.ok(v.failed, `${where}: no failed check named`);
  return v.failed.check;
}

describe("mutation: every byte of the quote's signed regions", () => {
  it("the unmutated quote verifies (baseline)", async () => {
    assert.equal((await verifyQuote(QUOTE, { at: AT })).ok, true);
  });
  for (const r of REGIONS) {
    it(`${r.name} (${r.end - r.start} bytes): each flip fails at ${r.expect.join(" or ")}`, async () => {
      for (let i = r.start; i < r.end; i++) {
        const check = failedAt(await verifyQuote(flipped(QUOTE, i), { at: AT }), `byte ${i}`);
        // The header's length-relevant fields may break the parse first; that is a named check too.
        assert.ok(r.expect.includes(check) || check === "quote.format", `byte ${i}: failed at ${check}`);
      }
    });
  }
});

describe("mutation: every DER byte of the PCK chain inside the quote", () => {
  const cd = sd.certification;
  const text = Buffer.from(cd.data).toString("latin1");
  const lengths = pemDerLengths(text);
  it("the chain has three certificates (leaf, intermediate, root)", () => assert.equal(lengths.length, 3));
  for (const [block, len] of lengths.entries()) {
    it(`certificate #${block + 1} (${len} bytes): each flip fails at pck.chain or qe.signature`, async () => {
      for (let i = 0; i < len; i++) {
        const q = Uint8Array.from(QUOTE);
        q.set(Buffer.from(flipPemDer(text, block, i), "latin1"), cd.offset);
        const check = failedAt(await verifyQuote(q, { at: AT }), `certificate ${block + 1} byte ${i}`);
        assert.ok(check === "pck.chain" || check === "qe.signature", `certificate ${block + 1} byte ${i}: failed at ${check}`);
      }
    });
  }
});

describe("mutation: every byte of the collateral", () => {
  let parts: CollateralParts;
  before(async () => {
    parts = await partsFromPcsDirectory(vectorPath("sgx/phala/collateral"));
  });
  const verifyWith = (p: CollateralParts) => verifyQuote(QUOTE, { at: AT, collateral: partsToQvl(p) });
  const COLLATERAL_CHECKS: CheckName[] = ["collateral.format", "collateral.signature", "pck.revocation", "collateral.fresh", "tcb.status", "qe.identity"];

  it("the unmutated collateral verifies (baseline)", async () => {
    const v = await verifyWith(parts);
    assert.equal(v.ok, true, JSON.stringify(v.failed));
  });

  for (const key of ["tcbInfo", "qeIdentity"] as const) {
    it(`${key} body as served: each character flipped fails`, async () => {
      const text = parts[key];
      for (let i = 0; i < text.length; i++) {
        const mutated = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 0x01) + text.slice(i + 1);
        const check = failedAt(await verifyWith({ ...parts, [key]: mutated }), `${key} char ${i}`);
        assert.ok(check === "collateral.format" || check === "collateral.signature", `${key} char ${i}: ${check}`);
      }
    });
  }

  for (const key of ["tcbInfoSignature", "qeIdentitySignature", "pckCrl", "rootCaCrl"] as const) {
    it(`${key}: each byte flipped fails`, async () => {
      const bytes = parts[key];
      for (let i = 0; i < bytes.length; i++) {
        const check = failedAt(await verifyWith({ ...parts, [key]: flipped(bytes, i) }), `${key} byte ${i}`);
        assert.ok(COLLATERAL_CHECKS.includes(check), `${key} byte ${i}: ${check}`);
      }
    });
  }

  for (const key of ["tcbInfoIssuerChain", "qeIdentityIssuerChain", "pckCrlIssuerChain"] as const) {
    it(`${key}: each DER byte of each certificate flipped fails`, async () => {
      const text = parts[key];
      for (const [block, len] of pemDerLengths(text).entries()) {
        for (let i = 0; i < len; i++) {
          const check = failedAt(await verifyWith({ ...parts, [key]: flipPemDer(text, block, i) }), `${key} cert ${block + 1} byte ${i}`);
          assert.ok(COLLATERAL_CHECKS.includes(check), `${key} cert ${block + 1} byte ${i}: ${check}`);
        }
      }
    });
  }
});
