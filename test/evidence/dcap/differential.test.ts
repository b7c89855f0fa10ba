/**
 * Differential test against @phala/dcap-qvl, an independent implementation: on every vector with
 * collateral, the same TCB status and advisory IDs, and agreement on accept / reject.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import { verifyQuote } from "../../../proxy/evidence/dcap/verify.js";
import { qvlCollateralFromDir } from "../../support/qvl.js";
import { expected, vector, vectorPath } from "../../support/vectors.js";

const qvl = createRequire(import.meta.url)("@phala/dcap-qvl") as {
  verify(quote: Uint8Array, collateral: object, nowSecs: number): { status: string; advisory_ids: string[] };
};

function oracle(quote: Uint8Array, collateral: object, at: Date): { status: string; advisoryIds: string[] } | { error: string } {
  try {
    const r = qvl.verify(Buffer.from(quote), collateral, Math.floor(at.getTime() / 1000));
    return { status: r.status, advisoryIds: r.advisory_ids };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

describe("differential: this verifier vs @phala/dcap-qvl", () => {
  const withCollateral = [...expected.sgxQuotes.filter((x) => x.collateral), ...expected.tdxQuotes];
  // Genuine quotes whose PCK TCB is below every level of their collateral (see verify-vectors).
  const bothRefuse = new Set(["tdx/phala-v5/quote.bin", "tdx/gcp-spr/quote-with-trailing-bytes.dat"]);
  for (const e of withCollateral) {
    it(`${e.path}: same status and advisories`, async () => {
      const at = new Date(e.at!);
      const quote = vector(e.path);
      const theirs = oracle(quote, await qvlCollateralFromDir(vectorPath(e.collateral!)), at);
      const ours = await verifyQuote(quote, { at, collateral: vectorPath(e.collateral!) });
      assert.equal("error" in theirs, bothRefuse.has(e.path), `dcap-qvl: ${JSON.stringify(theirs)}`);
      if ("error" in theirs) {
        // dcap-qvl stops at the first problem; where it refuses, we must refuse too, and for the
        // same reason when it is the TCB level.
        assert.equal(ours.ok, false, `dcap-qvl refused (${theirs.error}), we accepted`);
        if (/No matching TCB level/.test(theirs.error)) {
          assert.equal(ours.failed?.check, "tcb.status");
          assert.match(ours.failed?.reason ?? "", /no TCB level matches/);
        }
        return;
      }
      assert.ok(ours.tcb, `dcap-qvl gives ${theirs.status}; we: ${JSON.stringify(ours.failed)}`);
      assert.equal(ours.tcb.status, theirs.status);
      assert.deepEqual([...ours.tcb.advisoryIds].sort(), [...theirs.advisoryIds].sort());
      if ("note" in e && e.note?.includes("stale")) {
        // The one intended divergence: dcap-qvl does not check CRL nextUpdate; we fail closed on it.
        assert.equal(ours.failed?.check, "collateral.fresh");
        assert.match(ours.failed?.reason ?? "", /^PCK CRL nextUpdate/);
      } else {
        assert.equal(ours.ok, true, JSON.stringify(ours.failed));
      }
    });
  }

  it("the corrupted quote: both refuse", async () => {
    const e = expected.sgxQuotes.find((x) => x.path === "sgx/phala/quote.bin")!;
    const quote = Uint8Array.from(vector(e.path));
    quote[100]! ^= 0x01; // inside the report body: the attestation key's signature breaks
    const at = new Date(e.at!);
    const theirs = oracle(quote, await qvlCollateralFromDir(vectorPath(e.collateral!)), at);
    const ours = await verifyQuote(quote, { at, collateral: vectorPath(e.collateral!) });
    assert.ok("error" in theirs);
    assert.equal(ours.ok, false);
    assert.equal(ours.failed?.check, "quote.signature");
  });
});
