/**
 * expected.json, entry by entry: the verdict this verifier reaches on real Intel evidence.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pckCertificates } from "../../../proxy/evidence/dcap/quote-checks.js";
import { parseQuote } from "../../../proxy/evidence/dcap/quote.js";
import type { Verdict } from "../../../proxy/evidence/verdict.js";
import { verifyQuote } from "../../../proxy/evidence/dcap/verify.js";
import { parseTcbInfo } from "../../../proxy/evidence/dcap/collateral.js";
import { partsFromPcsDirectory } from "../../../proxy/evidence/dcap/collateral-files.js";
import { parsePckExtension } from "../../../proxy/evidence/asn1/sgx-extension.js";
import { matchPlatformLevel } from "../../../proxy/evidence/dcap/tcb.js";
import { expected, vector, vectorPath, type ExpectedSgx } from "../../support/vectors.js";

function check(v: Verdict, name: string) {
  return v.checks.find((c) => c.check === name);
}

/** For vectors without a reference time: one day after the newest certificate in the chain was issued. */
function chainTime(path: string): Date {
  const certs = pckCertificates(parseQuote(vector(path)));
  assert.ok(certs.ok);
  const newest = Math.max(...certs.value.map((c) => c.notBefore.getTime()));
  return new Date(newest + 86_400_000);
}

function timeFor(e: ExpectedSgx): Date {
  if (e.at) return new Date(e.at);
  return e.certDataType === 5 ? chainTime(e.path) : new Date();
}

describe("verifyQuote on the SGX vectors without collateral", () => {
  for (const e of expected.sgxQuotes) {
    it(`${e.path}: signatures ${e.signatures}`, async () => {
      const v = await verifyQuote(vector(e.path), { at: timeFor(e) });
      assert.equal(v.quote?.teeType, "SGX");
      assert.equal(v.tcb, null);
      assert.equal(v.dev, false);
      if (v.quote?.teeType === "SGX") {
        assert.equal(v.quote.mrenclave, e.mrenclave);
        assert.equal(v.quote.debug, e.debug);
      }
      if (e.signatures === "valid") {
        assert.equal(v.ok, true, JSON.stringify(v.failed));
        assert.equal(v.failed, null);
        assert.equal(v.platform?.fmspc, e.fmspc);
        for (const name of ["quote.format", "quote.signature", "qe.binding", "pck.chain", "qe.signature"]) {
          assert.equal(check(v, name)?.ok, true, name);
        }
      } else if (e.signatures === "invalid") {
        assert.equal(v.ok, false);
        assert.equal(v.failed?.check, "quote.signature");
      } else {
        assert.equal(v.ok, false);
        assert.equal(v.failed?.check, "pck.chain");
        assert.match(v.failed?.reason ?? "", /PCK_CHAIN_MISSING/);
        assert.match(v.failed?.reason ?? "", /type 3/);
        assert.equal(v.platform, null);
      }
    });
  }

  it("fortanix out-of-order chain with the older root certificate chains to the pinned Intel key", async () => {
    const v = await verifyQuote(vector("sgx/fortanix/quote-chain-out-of-order.bin"), { at: chainTime("sgx/fortanix/quote-chain-out-of-order.bin") });
    assert.equal(check(v, "pck.chain")?.ok, true);
    assert.match(check(v, "pck.chain")?.detail ?? "", /Intel SGX Root CA \(pinned by key\)/);
  });

  it("a PCK chain is judged at the verification time: before the leaf was issued it fails", async () => {
    const at = new Date(chainTime("sgx/phala/quote.bin").getTime() - 30 * 86_400_000);
    const v = await verifyQuote(vector("sgx/phala/quote.bin"), { at });
    assert.equal(v.failed?.check, "pck.chain");
    assert.match(v.failed?.reason ?? "", /not valid before/);
  });

  it("after the root certificate of 2033 expires, the older-root quote still chains (anchor is the key; our root runs to 2049) but the PCK leaf has expired", async () => {
    const v = await verifyQuote(vector("sgx/fortanix/quote-old-root.bin"), { at: new Date("2034-01-01T00:00:00Z") });
    assert.equal(v.failed?.check, "pck.chain");
    assert.match(v.failed?.reason ?? "", /expired/);
  });
});

describe("verifyQuote on the SGX vectors with collateral", () => {
  for (const e of expected.sgxQuotes.filter((x) => x.collateral)) {
    it(`${e.path}: at ${e.at} → ${e.tcbStatus ?? "verifies"} ${(e.advisoryIds ?? []).join(",")}`, async () => {
      const v = await verifyQuote(vector(e.path), { at: new Date(e.at!), collateral: vectorPath(e.collateral!) });
      assert.ok(v.tcb, JSON.stringify(v.checks, null, 1));
      if (e.tcbStatus) assert.equal(v.tcb.status, e.tcbStatus);
      if (e.advisoryIds) assert.deepEqual([...v.tcb.advisoryIds].sort(), [...e.advisoryIds].sort());
      for (const name of ["quote.signature", "qe.binding", "pck.chain", "qe.signature", "collateral.format", "collateral.signature", "pck.revocation", "qe.identity", "tcb.status"]) {
        assert.equal(check(v, name)?.ok, true, `${name}: ${check(v, name)?.detail}`);
      }
      if (e.note?.includes("stale")) {
        // mobilecoin: the PCK CRL is past its nextUpdate at the reference time. Fail closed, say why.
        assert.equal(v.tcb.collateralExpired, true);
        assert.equal(v.ok, false);
        assert.equal(v.failed?.check, "collateral.fresh");
        assert.match(v.failed?.reason ?? "", /PCK CRL nextUpdate 2023-05-21/);
      } else {
        assert.equal(v.tcb.collateralExpired, false);
        assert.equal(v.ok, true, JSON.stringify(v.failed));
      }
    });
  }

  it("phala collateral also loads from the dcap-qvl single-file JSON, with the same verdict", async () => {
    const e = expected.sgxQuotes.find((x) => x.path === "sgx/phala/quote.bin")!;
    const a = await verifyQuote(vector(e.path), { at: new Date(e.at!), collateral: vectorPath(e.collateral!) });
    const b = await verifyQuote(vector(e.path), { at: new Date(e.at!), collateral: vectorPath("sgx/phala/collateral.dcap-qvl.json") });
    assert.deepEqual(b, a);
  });

  it("collateral past its nextUpdate fails collateral.fresh, and before its issue date too", async () => {
    const q = vector("sgx/phala/quote.bin");
    const col = vectorPath("sgx/phala/collateral");
    const late = await verifyQuote(q, { at: new Date("2025-08-01T00:00:00Z"), collateral: col });
    assert.equal(late.failed?.check, "collateral.fresh");
    assert.equal(late.tcb?.collateralExpired, true);
    const early = await verifyQuote(q, { at: new Date("2025-06-01T00:00:00Z"), collateral: col });
    assert.equal(check(early, "collateral.fresh")?.ok, false);
    assert.match(check(early, "collateral.fresh")?.detail ?? "", /after the verification time/);
  });

  it("collateral for another platform fails tcb.status on the FMSPC", async () => {
    const v = await verifyQuote(vector("sgx/phala/quote.bin"), { at: new Date("2025-08-15T05:45:00Z"), collateral: vectorPath("sgx/automata/collateral") });
    assert.equal(check(v, "tcb.status")?.ok, false);
    assert.match(check(v, "tcb.status")?.detail ?? "", /FMSPC 00a067110000 does not match TCB info FMSPC 00606a000000/);
    assert.equal(v.ok, false);
  });

  it("unreadable collateral is the caller's error, not a verdict", async () => {
    await assert.rejects(verifyQuote(vector("sgx/phala/quote.bin"), { collateral: vectorPath("no/such/dir") }), { code: "COLLATERAL_UNREADABLE" });
  });
});

describe("verifyQuote on the TDX vectors", () => {
  const SIGNED = ["quote.format", "quote.signature", "qe.binding", "pck.chain", "qe.signature", "collateral.signature", "pck.revocation", "collateral.fresh", "qe.identity"];
  const run = (path: string) => {
    const e = expected.tdxQuotes.find((x) => x.path === path)!;
    return verifyQuote(vector(e.path), { at: new Date(e.at), collateral: vectorPath(e.collateral) });
  };

  it("tdx/phala-v4: every check passes, UpToDate as asserted", async () => {
    const v = await run("tdx/phala-v4/quote.bin");
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.tcb?.status, "UpToDate");
    assert.deepEqual(v.tcb?.advisoryIds, []);
  });

  // These two are genuine quotes with valid signatures and current collateral whose PCK TCB is
  // below every level of that collateral: Intel's algorithm has no status for them, and an
  // unsupported TCB is refused. @phala/dcap-qvl agrees ("No matching TCB level found").
  it('tdx/phala-v5 ("outdated" at its source): signatures hold, no TCB level matches (PCK component 8 is 3, every level needs 5)', async () => {
    const v = await run("tdx/phala-v5/quote.bin");
    for (const name of SIGNED) assert.equal(check(v, name)?.ok, true, `${name}: ${check(v, name)?.detail}`);
    assert.equal(v.failed?.check, "tcb.status");
    assert.match(v.failed?.reason ?? "", /no TCB level matches the platform \(components 3,3,2,2,4,1,0,3,/);
  });

  it("tdx/gcp-spr: signatures hold, no TCB level matches; go-tdx-guest's UpToDate needs its test's zeroed first level", async () => {
    // expected.json says UpToDate "assertedBy google/go-tdx-guest verify tests"; that test
    // (TestSupportedTcbLevelsFromCollateral) first sets the first level's SVNs to 0 because the
    // sample collateral is newer than the quote. On the bytes as they are: components
    // 3,3,2,2,2,1,0,2 against 5,5,2,2,3,1,0,3 at both levels.
    const v = await run("tdx/gcp-spr/quote-with-trailing-bytes.dat");
    for (const name of SIGNED) assert.equal(check(v, name)?.ok, true, `${name}: ${check(v, name)?.detail}`);
    assert.equal(v.failed?.check, "tcb.status");
    assert.match(v.failed?.reason ?? "", /no TCB level matches the platform \(components 3,3,2,2,2,1,0,2,/);

    // Their experiment, reproduced on the evaluator: zero the first level's SVNs → UpToDate.
    const parts = await partsFromPcsDirectory(vectorPath("tdx/gcp-spr/collateral"));
    const info = parseTcbInfo(parts.tcbInfo);
    info.levels[0]!.sgxComponents.fill(0);
    info.levels[0]!.tdxComponents!.fill(0);
    const quote = parseQuote(vector("tdx/gcp-spr/quote-with-trailing-bytes.dat"));
    const certs = pckCertificates(quote);
    assert.ok(certs.ok && quote.teeType === "TDX");
    const m = matchPlatformLevel(info, parsePckExtension(certs.value[0]!), quote.body.teeTcbSvn);
    assert.ok(m.ok);
    assert.equal(m.value.tdx?.status, "UpToDate");
  });

  it("phala v4 runs TDX module 1: its module status is reported", async () => {
    const e = expected.tdxQuotes.find((x) => x.path === "tdx/phala-v4/quote.bin")!;
    const v = await verifyQuote(vector(e.path), { at: new Date(e.at), collateral: vectorPath(e.collateral) });
    assert.equal(v.tcb?.tdxModuleStatus, "UpToDate");
  });

  it("SGX collateral for a TDX quote fails", async () => {
    const e = expected.tdxQuotes[0]!;
    const v = await verifyQuote(vector(e.path), { at: new Date(e.at), collateral: vectorPath("sgx/phala/collateral") });
    assert.equal(v.ok, false);
  });
});

describe("path rules", () => {
  it("an unknown critical extension on a chain certificate refuses the path; known ones pass", async () => {
    const { validatePath, findLeaf } = await import("../../../proxy/evidence/dcap/chain.js");
    const { intelRoot } = await import("../../../proxy/evidence/dcap/roots.js");
    const certs = pckCertificates(parseQuote(vector("sgx/phala/quote.bin")));
    assert.ok(certs.ok);
    const at = chainTime("sgx/phala/quote.bin");
    const found = findLeaf(certs.value);
    assert.ok(found.ok);
    const leaf = found.value;
    assert.equal(validatePath(leaf, certs.value, [intelRoot()], at).ok, true);
    // Same certificate object with one extension marked critical (signature caches are keyed on
    // the bytes, which this does not change: the rule under test is the extension check).
    const ext = leaf.extensions.find((e) => e.oid === "1.2.840.113741.1.13.1")!;
    ext.critical = true;
    try {
      const r = validatePath(leaf, certs.value, [intelRoot()], at);
      assert.equal(r.ok, false);
      assert.match((r as { reason: string }).reason, /unknown critical extension 1\.2\.840\.113741\.1\.13\.1/);
    } finally {
      ext.critical = false;
    }
  });
});
