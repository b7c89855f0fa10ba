/**
 * Mutual attestation judges a TDX client the way it judges an SGX one: the client appraisal runs
 * the same policy (TDX entries, TD DEBUG), a trusted TD reaches the upstream as its MRTD and RTMRs,
 * and nothing on the path asks for an SGX identity. The certificate carries the real phala TDX v4
 * quote in the tagged-evidence extension; that quote cannot bind a key made here, so the appraisal
 * ends at the key binding, after the policy has judged the TD.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { buildClaims, buildRaTlsCertificate, spkiOf } from "../../proxy/attest/build/ratls.js";
import type { Appraisal } from "../../proxy/evidence/appraise.js";
import { buildPolicy, type Policy } from "../../proxy/evidence/policy.js";
import type { TdxQuoteFields } from "../../proxy/evidence/verdict.js";
import { ClientAppraiser, verdictHeaders, verdictOf } from "../../proxy/server/client-attestation.js";
import { expected, vector } from "../support/vectors.js";

const TDX_V4 = expected.tdxQuotes.find((q) => q.path === "tdx/phala-v4/quote.bin")!;
const PHALA_MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";

/** A client certificate holding the phala TD's quote, as a TDX client's RA-TLS certificate would. */
function tdCertificate(): Uint8Array {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const now = Date.now();
  return buildRaTlsCertificate({ key: privateKey, claims: buildClaims(spkiOf(privateKey)), taggedQuote: vector(TDX_V4.path), notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
}

/** Client policies must use certificate freshness; no collateral at today's date for a 2025 quote. */
const clientPolicy = (measurements: unknown): Promise<Policy> =>
  buildPolicy({ measurements, tcb: { require: false }, freshness: "certificate" }, "(client policy)", "/", () => Promise.reject(new Error("no roots")));

async function appraise(policy: Policy): Promise<{ appraisal: Appraisal; verdict: Awaited<ReturnType<ClientAppraiser["appraise"]>> }> {
  let appraisal: Appraisal | null = null;
  const a = new ClientAppraiser({ policy, onAppraised: (_v, got) => void (appraisal = got) });
  const verdict = await a.appraise(tdCertificate());
  assert.ok(appraisal, "the appraisal ran");
  return { appraisal, verdict };
}

describe("mutual attestation of a TDX client", () => {
  it("the client policy judges the TD: its MRTD passes policy.measurement, another MRTD fails naming mrtd", async () => {
    const good = await appraise(await clientPolicy([{ mrtd: PHALA_MRTD }]));
    const check = (name: string) => good.appraisal.checks.find((c) => c.check === name);
    assert.equal(check("quote.signature")?.ok, true);
    assert.equal(check("pck.chain")?.ok, true, check("pck.chain")?.detail);
    assert.equal(check("policy.measurement")?.ok, true, check("policy.measurement")?.detail);
    assert.equal(check("policy.debug")?.detail, "production TD (DEBUG not set)");
    // The one failure is the key binding: the real quote's report data is not this certificate's.
    assert.deepEqual(
      good.appraisal.checks.filter((c) => !c.ok).map((c) => c.check),
      ["binding.report-data"],
    );
    assert.equal(good.verdict.state, "rejected");
    assert.equal(good.verdict.state === "rejected" && good.verdict.check, "binding.report-data");

    const wrong = await appraise(await clientPolicy([{ mrtd: "ab".repeat(48) }]));
    const miss = wrong.appraisal.checks.find((c) => c.check === "policy.measurement");
    assert.equal(miss?.ok, false);
    assert.match(miss!.detail, /measurements\[0\]: mrtd differs$/);
    const sgx = await appraise(await clientPolicy([{ mrenclave: "ab".repeat(32) }]));
    assert.match(sgx.appraisal.checks.find((c) => c.check === "policy.measurement")!.detail, /an SGX enclave entry, and the quote is TDX/);
  });

  it("a trusted TD reaches the upstream as its MRTD and RTMR0..3, with no SGX headers", async () => {
    const { appraisal } = await appraise(await clientPolicy([{ mrtd: PHALA_MRTD }]));
    // The same appraisal, had its binding held: what the listener then tells the upstream.
    const v = verdictOf("f".repeat(64), { ...appraisal, ok: true, failed: null });
    assert.equal(v.state, "trusted");
    assert.equal(v.state === "trusted" && v.tee, "TDX");
    const q = appraisal.quote as TdxQuoteFields;
    assert.deepEqual(verdictHeaders(v), {
      "X-Attested-Client-Verdict": "trusted",
      "X-Attested-Client-Mrtd": PHALA_MRTD,
      "X-Attested-Client-Rtmr0": q.rtmr[0],
      "X-Attested-Client-Rtmr1": q.rtmr[1],
      "X-Attested-Client-Rtmr2": q.rtmr[2],
      "X-Attested-Client-Rtmr3": q.rtmr[3],
    });
    // A verdict that failed stays rejected whatever the TEE.
    assert.equal(verdictOf("f".repeat(64), appraisal).state, "rejected");
  });
});
