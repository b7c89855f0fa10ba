/**
 * Policy files: validation (every bad key or value is an error naming the key) and the policy
 * checks on real verdicts (Intel vectors with collateral, dev evidence).
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { INTEL_SGX_ROOT_CA_PEM } from "../../proxy/evidence/dcap/roots.js";
import { applyPolicy, loadPolicy, PolicyError } from "../../proxy/evidence/policy.js";
import type { Verdict } from "../../proxy/evidence/verdict.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { checkOf, policy, rejects } from "../support/policy.js";
import { REPO, vector, vectorPath } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const PHALA = { quote: "sgx/phala/quote.bin", collateral: "sgx/phala/collateral", at: new Date("2025-07-19T10:01:17Z") };
const PHALA_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const PHALA_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";
const MOBILECOIN = { quote: "sgx/mobilecoin/quote.bin", collateral: "sgx/mobilecoin/collateral", at: new Date("2023-07-12T20:48:25Z") };

describe("policy files: validation", () => {
  it("defaults: Intel root, no debug, UpToDate only, 30 days, exporter freshness, Intel PCS with a cache", async () => {
    const p = await policy({ measurements: [{ mrenclave: PHALA_MRENCLAVE.toUpperCase() }] });
    assert.equal(p.trustIntel, true);
    assert.deepEqual(p.trustRoots, []);
    assert.deepEqual(p.measurements, [{ tee: "SGX", mrenclave: PHALA_MRENCLAVE, mrsigner: null, isvProdId: null, minIsvSvn: null }]);
    assert.equal(p.allowDebug, false);
    assert.deepEqual(p.tcb, { require: true, acceptStatuses: ["UpToDate"], acceptAdvisories: [], maxCollateralAgeMs: 30 * 86_400_000, acceptStaleCollateral: false });
    assert.equal(p.freshness, "exporter");
    assert.equal(p.collateral.pccsUrl, "https://api.trustedservices.intel.com/");
    assert.equal(p.collateral.path, null);
    assert.match(p.collateral.cacheDir ?? "", /\.cache\/attestable-mcp$/);
  });

  it("a policy without measurements is an error; an empty list too; `any` only when written", async () => {
    await rejects({}, "measurements", /required/);
    await rejects({ measurements: [] }, "measurements", /matches nothing/);
    await rejects({ measurements: "all" }, "measurements", /expected a list/);
    assert.equal((await policy({ measurements: "any" })).measurements, "any");
  });

  it("unknown keys at every level are named", async () => {
    const m = [{ mrenclave: PHALA_MRENCLAVE }];
    await rejects({ measurements: m, trustroots: ["intel"] }, "trustroots", /unknown key/);
    await rejects({ measurements: m, tcb: { requires: true } }, "tcb.requires", /unknown key/);
    await rejects({ measurements: m, collateral: { url: "https://x/" } }, "collateral.url", /unknown key/);
    await rejects({ measurements: [{ mrenclave: PHALA_MRENCLAVE, isvSvn: 2 }] }, "measurements[0].isvSvn", /unknown key/);
    await rejects("just text", "(top level)", /mapping/);
  });

  it("every bad value names its key", async () => {
    const m = [{ mrenclave: PHALA_MRENCLAVE }];
    await rejects({ measurements: [{ mrenclave: "abcd" }] }, "measurements[0].mrenclave", /32 bytes of hex/);
    await rejects({ measurements: [{ mrsigner: PHALA_MRSIGNER, isvProdId: 70000 }] }, "measurements[0].isvProdId", /0\.\.65535/);
    await rejects({ measurements: [{ isvProdId: 1 }] }, "measurements[0]", /SGX entry needs mrenclave or mrsigner/);
    await rejects({ measurements: m, allowDebug: "yes" }, "allowDebug", /true or false/);
    await rejects({ measurements: m, tcb: { acceptStatuses: ["UpToDate", "Fine"] } }, "tcb.acceptStatuses[1]", /one of/);
    await rejects({ measurements: m, tcb: { acceptStatuses: ["Revoked"] } }, "tcb.acceptStatuses[0]", /never acceptable/);
    await rejects({ measurements: m, tcb: { acceptStatuses: [] } }, "tcb.acceptStatuses", /accepts no/);
    await rejects({ measurements: m, tcb: { acceptAdvisories: ["SA-1"] } }, "tcb.acceptAdvisories[0]", /advisory ID/);
    await rejects({ measurements: m, tcb: { maxCollateralAge: "a month" } }, "tcb.maxCollateralAge", /duration/);
    await rejects({ measurements: m, tcb: { require: "no" } }, "tcb.require", /true or false/);
    await rejects({ measurements: m, freshness: "tls" }, "freshness", /exporter, nonce, certificate/);
    await rejects({ measurements: m, trustRoots: [] }, "trustRoots", /trusts nothing/);
    await rejects({ measurements: m, trustRoots: ["dev-root.pem"] }, "trustRoots[0]", /cannot read \/policies\/dev-root\.pem \(ENOENT\)/);
    await rejects({ measurements: m, trustRoots: ["bad.pem"] }, "trustRoots[0]", /no certificate/, async () => "not a pem");
    await rejects({ measurements: m, collateral: { pccsUrl: "http://pccs.example:8081/" } }, "collateral.pccsUrl", /https/);
    await rejects({ measurements: m, collateral: { pccsUrl: "https://a/", path: "col" } }, "collateral.path", /not both/);
  });

  it("trust roots: paths relative to the policy file; Intel's root written as a file counts as intel", async () => {
    const provider = await DevProvider.open({ dir: tempDir("amcp-policy-"), warn: () => {} });
    const seen: string[] = [];
    const read = async (path: string) => {
      seen.push(path);
      return path.endsWith("intel.pem") ? INTEL_SGX_ROOT_CA_PEM : provider.rootPem;
    };
    const dev = await policy({ measurements: "any", trustRoots: ["dev/root.pem"] }, read);
    assert.equal(dev.trustIntel, false);
    assert.deepEqual(
      dev.trustRoots.map((r) => r.path),
      ["/policies/dev/root.pem"],
    );
    const intel = await policy({ measurements: "any", trustRoots: ["/etc/intel.pem"] }, read);
    assert.equal(intel.trustIntel, true);
    assert.deepEqual(intel.trustRoots, []);
    assert.deepEqual(seen, ["/policies/dev/root.pem", "/etc/intel.pem"]);
  });

  it("collateral: a local path (relative to the policy), plain http only on loopback, no cache when null", async () => {
    const m = [{ mrenclave: PHALA_MRENCLAVE }];
    const local = await policy({ measurements: m, collateral: { path: "collateral", cacheDir: null } });
    assert.deepEqual(local.collateral, { pccsUrl: null, path: "/policies/collateral", cacheDir: null });
    const pccs = await policy({ measurements: m, collateral: { pccsUrl: "http://127.0.0.1:8081/sgx/certification/v4/" } });
    assert.equal(pccs.collateral.pccsUrl, "http://127.0.0.1:8081/sgx/certification/v4/");
  });

  it("loadPolicy reads YAML, refuses duplicate keys and names an unreadable file", async () => {
    const dir = tempDir("amcp-policy-");
    try {
      const file = join(dir, "p.yaml");
      await writeFile(file, `measurements:\n  - { mrsigner: "${PHALA_MRSIGNER}", isvProdId: 0, minIsvSvn: 0 }\nfreshness: nonce\n`);
      const p = await loadPolicy(file);
      assert.equal(p.source, file);
      assert.equal(p.freshness, "nonce");
      await writeFile(file, "allowDebug: true\nallowDebug: false\nmeasurements: any\n");
      await assert.rejects(loadPolicy(file), (e: unknown) => e instanceof PolicyError && e.key === "(yaml)" && /unique/i.test(e.message));
      await assert.rejects(loadPolicy(join(dir, "missing.yaml")), (e: unknown) => e instanceof PolicyError && e.key === "--policy" && /ENOENT/.test(e.message));
      // The shipped example is a valid policy.
      const example = await loadPolicy(join(REPO, "configs/policy.example.yaml"));
      assert.equal(example.trustIntel, true);
      assert.equal(example.allowDebug, false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("policy checks on real Intel evidence (phala: ConfigurationAndSWHardeningNeeded, INTEL-SA-00289 + 00615)", () => {
  let phala: Verdict;
  before(async () => {
    phala = await verifyQuote(vector(PHALA.quote), { collateral: vectorPath(PHALA.collateral), at: PHALA.at });
    assert.equal(phala.ok, true, JSON.stringify(phala.failed));
    assert.equal(phala.tcb?.status, "ConfigurationAndSWHardeningNeeded");
  });

  const base = {
    measurements: [{ mrenclave: PHALA_MRENCLAVE }],
    tcb: { acceptStatuses: ["ConfigurationAndSWHardeningNeeded"], acceptAdvisories: ["INTEL-SA-00289", "INTEL-SA-00615"], maxCollateralAge: "36500d" },
  };

  it("a policy that accepts what the evidence shows passes, with every policy check listed", async () => {
    const v = applyPolicy(phala, await policy(base));
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.policy, "test.yaml");
    assert.deepEqual(
      v.checks.filter((c) => c.check.startsWith("policy.")).map((c) => c.check),
      ["policy.trust-root", "policy.measurement", "policy.debug", "policy.tcb-status", "policy.advisories", "policy.collateral-age"],
    );
  });

  it("a wrong measurement fails policy.measurement and names what was seen", async () => {
    const v = applyPolicy(phala, await policy({ ...base, measurements: [{ mrenclave: "00".repeat(32) }, { mrsigner: PHALA_MRSIGNER, isvProdId: 1 }] }));
    assert.equal(v.ok, false);
    assert.equal(v.failed?.check, "policy.measurement");
    assert.match(v.failed!.reason, new RegExp(`mrenclave ${PHALA_MRENCLAVE}`));
    assert.match(v.failed!.reason, /measurements\[0\]: mrenclave differs; measurements\[1\]: isvProdId 0 ≠ 1$/);
  });

  it("rolling upgrades: any one entry may match (mrsigner + product + minimum SVN)", async () => {
    const p = await policy({ ...base, measurements: [{ mrenclave: "11".repeat(32) }, { mrsigner: PHALA_MRSIGNER, isvProdId: 0, minIsvSvn: 0 }] });
    const v = applyPolicy(phala, p);
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.match(checkOf(v, "policy.measurement")!.detail, /measurements\[1\] matches/);
    const tooOld = applyPolicy(phala, await policy({ ...base, measurements: [{ mrsigner: PHALA_MRSIGNER, minIsvSvn: 1 }] }));
    assert.match(tooOld.failed?.reason ?? "", /isvSvn 0 < 1/);
  });

  it("a status outside acceptStatuses fails policy.tcb-status; an advisory outside acceptAdvisories fails policy.advisories", async () => {
    const strict = applyPolicy(phala, await policy({ measurements: base.measurements }));
    assert.equal(strict.failed?.check, "policy.tcb-status");
    assert.match(strict.failed!.reason, /ConfigurationAndSWHardeningNeeded is not in acceptStatuses \[UpToDate\]/);
    const partial = applyPolicy(phala, await policy({ ...base, tcb: { ...base.tcb, acceptAdvisories: ["INTEL-SA-00289"] } }));
    assert.equal(partial.failed?.check, "policy.advisories");
    assert.match(partial.failed!.reason, /INTEL-SA-00615 not in acceptAdvisories/);
    const any = applyPolicy(phala, await policy({ ...base, tcb: { ...base.tcb, acceptAdvisories: "any" } }));
    assert.equal(any.ok, true);
  });

  it("collateral older than maxCollateralAge fails policy.collateral-age", async () => {
    const v = applyPolicy(phala, await policy({ ...base, tcb: { ...base.tcb, maxCollateralAge: "1d" } }));
    assert.equal(v.failed?.check, "policy.collateral-age");
    assert.match(v.failed!.reason, /maxCollateralAge 1\.0 days/);
  });

  it("Intel evidence under a policy that lists only other roots fails policy.trust-root", async () => {
    const provider = await DevProvider.open({ dir: tempDir("amcp-policy-"), warn: () => {} });
    const v = applyPolicy(phala, await policy({ ...base, trustRoots: ["dev.pem"] }, async () => provider.rootPem));
    assert.equal(v.failed?.check, "policy.trust-root");
  });

  it("tcb.require without collateral fails; tcb.require: false says not evaluated", async () => {
    const bare = await verifyQuote(vector(PHALA.quote), { at: PHALA.at });
    const required = applyPolicy(bare, await policy(base));
    assert.equal(required.failed?.check, "policy.tcb-status");
    assert.match(required.failed!.reason, /not evaluated/);
    const optional = applyPolicy(bare, await policy({ ...base, tcb: { require: false } }));
    assert.equal(optional.ok, true, JSON.stringify(optional.failed));
    assert.equal(checkOf(optional, "policy.tcb-status")?.detail, "not evaluated (tcb.require: false)");
  });

  it("a failed core check stays the first failure; the policy cannot turn it into a pass", async () => {
    const broken = await verifyQuote(vector(PHALA.quote), { at: new Date("2040-01-01T00:00:00Z"), collateral: vectorPath(PHALA.collateral) });
    assert.equal(broken.ok, false);
    const v = applyPolicy(broken, await policy({ ...base, measurements: "any", tcb: { ...base.tcb, acceptStaleCollateral: true } }));
    assert.equal(v.ok, false);
    assert.equal(v.failed?.check, broken.failed?.check);
  });
});

describe("stale collateral is the policy's decision (mobilecoin: PCK CRL past nextUpdate)", () => {
  it("refused by default; accepted only with acceptStaleCollateral, still reported and still bounded by maxCollateralAge", async () => {
    const strict = await verifyQuote(vector(MOBILECOIN.quote), { collateral: vectorPath(MOBILECOIN.collateral), at: MOBILECOIN.at });
    assert.equal(strict.failed?.check, "collateral.fresh");
    const lenient = await verifyQuote(vector(MOBILECOIN.quote), { collateral: vectorPath(MOBILECOIN.collateral), at: MOBILECOIN.at, acceptStaleCollateral: true });
    assert.equal(lenient.ok, true, JSON.stringify(lenient.failed));
    assert.match(checkOf(lenient, "collateral.fresh")!.detail, /^stale, accepted by the caller's policy: PCK CRL nextUpdate 2023-05-21/);
    assert.equal(lenient.tcb?.collateralExpired, true);
    assert.ok(Date.parse(lenient.tcb!.collateralIssued) < MOBILECOIN.at.getTime());
    const p = await policy({ measurements: "any", tcb: { acceptStatuses: ["SWHardeningNeeded"], acceptAdvisories: "any", acceptStaleCollateral: true, maxCollateralAge: "30d" } });
    const aged = applyPolicy(lenient, p);
    assert.equal(aged.failed?.check, "policy.collateral-age");
    // Collateral issued after the verification time is never "stale": it stays a failure.
    const early = await verifyQuote(vector(MOBILECOIN.quote), { collateral: vectorPath(MOBILECOIN.collateral), at: new Date("2020-01-01T00:00:00Z"), acceptStaleCollateral: true });
    assert.equal(checkOf(early, "collateral.fresh")?.ok, false);
  });
});

describe("policy checks on dev evidence", () => {
  let provider: DevProvider;
  let dir: string;
  before(async () => {
    dir = tempDir("amcp-policy-dev-");
    provider = await DevProvider.open({ dir, warn: () => {} });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("dev quotes are debug: refused without allowDebug, accepted with it under the dev root", async () => {
    const quote = await provider.quote(new Uint8Array(64));
    const v = await verifyQuote(quote, { trustRoots: [provider.rootPem] });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    const read = async () => provider.rootPem;
    const mrenclave = v.quote?.teeType === "SGX" ? v.quote.mrenclave : "";
    const strict = applyPolicy(v, await policy({ trustRoots: ["root.pem"], measurements: [{ mrenclave }], tcb: { require: false } }, read));
    assert.equal(strict.failed?.check, "policy.debug");
    assert.match(strict.failed!.reason, /DEBUG mode.*allowDebug is false/);
    const dev = applyPolicy(v, await policy({ trustRoots: ["root.pem"], measurements: [{ mrenclave }], allowDebug: true, tcb: { require: false } }, read));
    assert.equal(dev.ok, true, JSON.stringify(dev.failed));
    assert.match(checkOf(dev, "policy.trust-root")!.detail, /development evidence/);
    // The dev root is not trusted unless the policy lists it.
    const intelOnly = applyPolicy(await verifyQuote(quote), await policy({ measurements: [{ mrenclave }], allowDebug: true, tcb: { require: false } }));
    assert.equal(intelOnly.failed?.check, "pck.chain");
  });
});
