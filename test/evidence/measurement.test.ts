/**
 * Measurement entries for SGX enclaves and TDX trust domains: parsing (every bad input names the
 * key), matching (each missed field named, an SGX entry never matching a TD and the reverse),
 * the TD DEBUG attribute, and the real phala TDX v4 quote judged whole at its collateral's time.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { TDX_KEYS, tdAttributeNames } from "../../proxy/evidence/measurement.js";
import { applyPolicy } from "../../proxy/evidence/policy.js";
import type { TdxQuoteFields, Verdict } from "../../proxy/evidence/verdict.js";
import { checkOf, policy, rejects } from "../support/policy.js";
import { expected, vector, vectorPath } from "../support/vectors.js";

const TDX_V4 = expected.tdxQuotes.find((q) => q.path === "tdx/phala-v4/quote.bin")!;
const SGX_PHALA = { quote: "sgx/phala/quote.bin", collateral: "sgx/phala/collateral", at: new Date("2025-07-19T10:01:17Z") };
/** The phala v4 TD's MRTD and RTMR2, as `inspect` prints them (the before hook checks the parser reads the same). */
const PHALA_MRTD = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
const PHALA_RTMR2 = "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132";
const ZERO48 = "00".repeat(48);

/** The measurements are refused at `key`, for `reason`. */
const rejectsMeasurements = (measurements: unknown, key: string, reason: RegExp): Promise<void> => rejects({ measurements }, key, reason);

describe("measurement entries: parsing", () => {
  it("a TDX entry: mrtd required, every other register optional, hex lower-cased", async () => {
    const p = await policy({ measurements: [{ mrtd: PHALA_MRTD.toUpperCase(), rtmr2: PHALA_RTMR2 }] });
    assert.deepEqual(p.measurements, [{ tee: "TDX", mrtd: PHALA_MRTD, rtmr0: null, rtmr1: null, rtmr2: PHALA_RTMR2, rtmr3: null, mrconfigid: null, mrowner: null, mrownerconfig: null }]);
    const all = await policy({ measurements: [Object.fromEntries(TDX_KEYS.map((k) => [k, ZERO48]))] });
    assert.ok(Array.isArray(all.measurements) && all.measurements[0]!.tee === "TDX");
    const sgx = await policy({ measurements: [{ mrsigner: "ab".repeat(32), isvProdId: 1 }] });
    assert.deepEqual(sgx.measurements, [{ tee: "SGX", mrenclave: null, mrsigner: "ab".repeat(32), isvProdId: 1, minIsvSvn: null }]);
  });

  it("every TD register refuses any length but 48 bytes, and non-hex, naming its key", async () => {
    for (const k of TDX_KEYS) {
      const entry = (v: unknown) => [{ mrtd: PHALA_MRTD, [k]: v }];
      await rejectsMeasurements(entry("ab".repeat(32)), `measurements[0].${k}`, /expected 48 bytes of hex \(96 characters\)/);
      await rejectsMeasurements(entry("ab".repeat(49)), `measurements[0].${k}`, /48 bytes/);
      await rejectsMeasurements(entry("zz".repeat(48)), `measurements[0].${k}`, /48 bytes/);
      await rejectsMeasurements(entry(42), `measurements[0].${k}`, /48 bytes/);
    }
    // The SGX registers stay 32 bytes: a TD-sized value there is refused too.
    await rejectsMeasurements([{ mrenclave: PHALA_MRTD }], "measurements[0].mrenclave", /expected 32 bytes of hex \(64 characters\)/);
  });

  it("a TDX entry without mrtd, an entry mixing SGX and TDX keys, and an unknown key are refused", async () => {
    await rejectsMeasurements([{ mrtd: PHALA_MRTD }, { rtmr0: ZERO48, rtmr1: ZERO48 }], "measurements[1]", /a TDX entry needs mrtd \(it has rtmr0, rtmr1\)/);
    await rejectsMeasurements([{ mrenclave: "ab".repeat(32), mrtd: PHALA_MRTD }], "measurements[0]", /SGX enclave .* or a TDX trust domain .*not both: it has mrenclave and mrtd/);
    await rejectsMeasurements([{ isvProdId: 1, rtmr3: ZERO48 }], "measurements[0]", /not both: it has isvProdId and rtmr3/);
    await rejectsMeasurements(
      [{ mrtd: PHALA_MRTD, rtmr4: ZERO48 }],
      "measurements[0].rtmr4",
      /unknown key \(known: mrenclave, mrsigner, isvProdId, minIsvSvn, mrtd, rtmr0, rtmr1, rtmr2, rtmr3, mrconfigid, mrowner, mrownerconfig\)/,
    );
    await rejectsMeasurements([{ isvProdId: 1 }], "measurements[0]", /SGX entry needs mrenclave or mrsigner.*TDX entry needs mrtd/);
    await rejectsMeasurements(["mrtd"], "measurements[0]", /expected a mapping/);
  });
});

describe("measurement entries on the real phala TDX v4 quote (at its collateral's time)", () => {
  let td: Verdict;
  let q: TdxQuoteFields;
  before(async () => {
    td = await verifyQuote(vector(TDX_V4.path), { collateral: vectorPath(TDX_V4.collateral), at: new Date(TDX_V4.at) });
    assert.equal(td.ok, true, JSON.stringify(td.failed));
    assert.equal(td.quote?.teeType, "TDX");
    q = td.quote as TdxQuoteFields;
    assert.equal(q.mrtd, PHALA_MRTD);
    assert.equal(q.rtmr[2], PHALA_RTMR2);
  });

  // The collateral was issued months before the quote: the policy's age bound must allow it.
  const base = { tcb: { maxCollateralAge: "365d" } };
  /** An entry pinning every register of the quote, with `over` replacing some. */
  const pinned = (over: Record<string, string> = {}): Record<string, string> => ({
    mrtd: q.mrtd,
    ...Object.fromEntries(q.rtmr.map((r, i) => [`rtmr${i}`, r])),
    mrconfigid: q.mrconfigid,
    mrowner: q.mrowner,
    mrownerconfig: q.mrownerconfig,
    ...over,
  });

  it("a policy pinning its MRTD passes the whole verdict (Intel root, UpToDate, not DEBUG); so does one pinning every register", async () => {
    const v = applyPolicy(td, await policy({ ...base, measurements: [{ mrtd: PHALA_MRTD }] }));
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.match(checkOf(v, "policy.measurement")!.detail, /^measurements\[0\] matches \(mrtd 91eb2b44d141d4ec…\)$/);
    assert.equal(checkOf(v, "policy.debug")!.detail, "production TD (DEBUG not set)");
    assert.equal(checkOf(v, "policy.tcb-status")!.detail, "UpToDate is accepted");
    const full = applyPolicy(td, await policy({ ...base, measurements: [pinned()] }));
    assert.equal(full.ok, true, JSON.stringify(full.failed));
  });

  it("another MRTD fails policy.measurement naming mrtd and showing the quote's registers", async () => {
    const v = applyPolicy(td, await policy({ ...base, measurements: [{ mrtd: "ab".repeat(48) }] }));
    assert.equal(v.ok, false);
    assert.equal(v.failed?.check, "policy.measurement");
    assert.match(v.failed!.reason, new RegExp(`^TD mrtd ${PHALA_MRTD}, rtmr0 [0-9a-f]{96}, rtmr1 [0-9a-f]{96}, rtmr2 ${PHALA_RTMR2}, rtmr3 0{96} match no entry: measurements\\[0\\]: mrtd differs$`));
  });

  it("each register that misses is named, alone or together", async () => {
    for (const k of TDX_KEYS) {
      const v = applyPolicy(td, await policy({ ...base, measurements: [pinned({ [k]: "ee".repeat(48) })] }));
      assert.equal(v.failed?.check, "policy.measurement", k);
      assert.match(v.failed!.reason, new RegExp(`measurements\\[0\\]: ${k} differs$`), k);
    }
    const two = applyPolicy(td, await policy({ ...base, measurements: [pinned({ mrtd: ZERO48, rtmr2: ZERO48 })] }));
    assert.match(two.failed!.reason, /measurements\[0\]: mrtd, rtmr2 differ$/);
  });

  it("rolling upgrades: any one TDX entry may match; `any` still accepts a TD", async () => {
    const v = applyPolicy(td, await policy({ ...base, measurements: [{ mrtd: ZERO48 }, { mrtd: PHALA_MRTD, rtmr2: PHALA_RTMR2 }] }));
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.match(checkOf(v, "policy.measurement")!.detail, /^measurements\[1\] matches \(mrtd 91eb2b44d141d4ec…, rtmr2 d833feef2cd94514…\)$/);
    const any = applyPolicy(td, await policy({ ...base, measurements: "any" }));
    assert.equal(any.ok, true, JSON.stringify(any.failed));
    assert.equal(checkOf(any, "policy.measurement")!.detail, `any measurement accepted (policy says "any"): TD mrtd ${PHALA_MRTD}`);
  });

  it("a TD never matches an SGX entry, and an SGX enclave never matches a TDX entry; the miss says so", async () => {
    const sgxOnly = applyPolicy(td, await policy({ ...base, measurements: [{ mrenclave: "ab".repeat(32) }] }));
    assert.equal(sgxOnly.failed?.check, "policy.measurement");
    assert.match(sgxOnly.failed!.reason, /match no entry \(the policy lists no TDX entry\): measurements\[0\]: an SGX enclave entry, and the quote is TDX$/);
    const mixed = applyPolicy(td, await policy({ ...base, measurements: [{ mrsigner: "ab".repeat(32) }, { mrtd: PHALA_MRTD, rtmr1: ZERO48 }] }));
    assert.match(mixed.failed!.reason, /match no entry: measurements\[0\]: an SGX enclave entry, and the quote is TDX; measurements\[1\]: rtmr1 differs$/);

    const sgx = await verifyQuote(vector(SGX_PHALA.quote), { collateral: vectorPath(SGX_PHALA.collateral), at: SGX_PHALA.at });
    const tdxOnly = applyPolicy(sgx, await policy({ measurements: [{ mrtd: PHALA_MRTD }], tcb: { require: false } }));
    assert.equal(tdxOnly.failed?.check, "policy.measurement");
    assert.match(tdxOnly.failed!.reason, /^mrenclave [0-9a-f]{64}, .*match no entry \(the policy lists no SGX entry\): measurements\[0\]: a TDX trust domain entry, and the quote is SGX$/);
  });

  it("a DEBUG TD fails policy.debug unless allowDebug; the detail names the TD attribute", async () => {
    // The real TD is not debuggable: judge its verdict with the DEBUG attribute set, as a debug TD's quote reads.
    const debugTd: Verdict = { ...td, quote: { ...q, tdAttributes: "0100001000000000", debug: true } };
    const strict = applyPolicy(debugTd, await policy({ ...base, measurements: [{ mrtd: PHALA_MRTD }] }));
    assert.equal(strict.failed?.check, "policy.debug");
    assert.match(strict.failed!.reason, /^the TD is in DEBUG mode \(TD attributes bit 0: .*\); allowDebug is false$/);
    const allowed = applyPolicy(debugTd, await policy({ ...base, measurements: [{ mrtd: PHALA_MRTD }], allowDebug: true }));
    assert.equal(allowed.ok, true, JSON.stringify(allowed.failed));
    assert.equal(checkOf(allowed, "policy.debug")!.detail, "debug TD, allowed by allowDebug: true");
  });
});

describe("TD attributes by name", () => {
  it("names the set bits of the little-endian 64-bit field; unnamed bits by number", () => {
    assert.deepEqual(tdAttributeNames("0000001000000000"), ["SEPT_VE_DISABLE"]);
    assert.deepEqual(tdAttributeNames("0100004000000080"), ["DEBUG", "PKS", "PERFMON"]);
    assert.deepEqual(tdAttributeNames("0200000000000000"), ["bit 1"]);
    assert.deepEqual(tdAttributeNames("0000000000000000"), []);
  });
});
