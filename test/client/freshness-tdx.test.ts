/**
 * A fresh quote must carry the certificate quote's identity for a TD as for an enclave: every
 * register a policy may pin (MRTD, RTMR0..3, the owner registers), the TD attributes and debug.
 * Judged on the real phala TDX v4 quote's fields, each changed in turn.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { identityDiff } from "../../proxy/client/freshness.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import type { QuoteFields, TdxQuoteFields } from "../../proxy/evidence/verdict.js";
import { vector } from "../support/vectors.js";

describe("freshness.quote: the fresh quote's TD identity", () => {
  let td: TdxQuoteFields;
  let sgx: QuoteFields;
  before(async () => {
    td = (await verifyQuote(vector("tdx/phala-v4/quote.bin"), { at: new Date("2025-07-19T10:00:34Z") })).quote as TdxQuoteFields;
    assert.equal(td.teeType, "TDX");
    sgx = (await verifyQuote(vector("sgx/phala/quote.bin"), { at: new Date("2025-07-19T10:01:17Z") })).quote!;
    assert.equal(sgx.teeType, "SGX");
  });

  it("the same TD passes; each register, the TD attributes and debug, changed, are named", () => {
    assert.equal(identityDiff({ ...td, rtmr: [...td.rtmr] }, td), null);
    const other = "ee".repeat(48);
    for (const k of ["mrtd", "mrconfigid", "mrowner", "mrownerconfig"] as const) {
      assert.equal(identityDiff({ ...td, [k]: other }, td), `${k} ${other} (fresh) vs ${td[k]} (certificate)`, k);
    }
    for (let i = 0; i < 4; i++) {
      const rtmr = td.rtmr.map((r, j) => (j === i ? other : r));
      assert.equal(identityDiff({ ...td, rtmr }, td), `rtmr${i} ${other} (fresh) vs ${td.rtmr[i]} (certificate)`, `rtmr${i}`);
    }
    assert.match(identityDiff({ ...td, tdAttributes: "0100001000000000", debug: true }, td) ?? "", /^tdAttributes 0100001000000000 \(fresh\) vs 0000001000000000/);
    assert.match(identityDiff({ ...td, debug: true }, td) ?? "", /^debug true \(fresh\) vs false/);
  });

  it("a TD never stands in for an enclave, nor the reverse", () => {
    assert.equal(identityDiff(td, sgx), "TEE TDX vs SGX");
    assert.equal(identityDiff(sgx, td), "TEE SGX vs TDX");
    assert.equal(identityDiff(sgx, sgx), null);
  });
});
