/**
 * The verifier under fuzzed evidence (issue 8, short campaign; `npm run soak` runs ≥100k):
 * no exception, no input over 100 ms, no changed input accepted.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatReport, runVerifierFuzz } from "../support/verifier-fuzz.js";

describe("fuzz: the verifier", () => {
  it("mutated quotes, RA-TLS certificates, CBOR claims and collateral bodies end in a rejection, each within 100 ms", async () => {
    const r = await runVerifierFuzz({ quotes: 6_000, certificates: 3_000, claims: 600, collateral: 3_000 });
    console.log(formatReport(r));
    assert.deepEqual(r.findings.slice(0, 10), []);
    for (const [kind, k] of Object.entries(r.kinds)) {
      assert.ok(k.rejected > 0, `${kind}: some inputs are rejected`);
      // Mutations must reach past the parsers into the signature and binding checks.
      assert.ok(Object.keys(k.byCheck).length >= 2, `${kind}: failures at ${Object.keys(k.byCheck).join(", ")}`);
    }
    assert.ok(r.kinds.claims.byCheck["binding.pubkey-hash"]! > 0 || r.kinds.claims.byCheck["binding.report-data"]! > 0);
  });
});
