/**
 * A TD as the remote, on the client's side. A fresh quote must carry the certificate quote's
 * identity for a TD as for an enclave: every register a policy may pin (MRTD, RTMR0..3, the owner
 * registers), the TD attributes and debug; judged on the real phala TDX v4 quote's fields, each
 * changed in turn. The bridge's "remote verified" line names the TD.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { describeAccepted } from "../../proxy/client/bridge/stdio.js";
import { identityDiff } from "../../proxy/client/freshness.js";
import type { ConnectionVerdict } from "../../proxy/client/verdict.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import type { QuoteFields, TdxQuoteFields } from "../../proxy/evidence/verdict.js";
import { vector } from "../support/vectors.js";

describe("a TD as the remote", () => {
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

  it("the bridge's remote-verified line names the TD's MRTD and RTMRs, and DEBUG when set", () => {
    const v = { quote: td, dev: false, freshness: { mode: "exporter" }, fingerprint: "ab".repeat(32) } as unknown as ConnectionVerdict;
    const line = describeAccepted(v);
    assert.ok(line.startsWith(`TD mrtd ${td.mrtd}, rtmr0..3 ${td.rtmr.map((r) => `${r.slice(0, 16)}…`).join(" ")}, freshness exporter`), line);
    assert.match(describeAccepted({ ...v, quote: { ...td, debug: true } }), /…, DEBUG, freshness/);
    assert.doesNotMatch(line, /mrenclave/);
  });
});
