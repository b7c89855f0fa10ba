/** How long an appraisal is reused: until the certificate, the collateral, or the collateral's allowed age runs out. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { VerdictCache } from "../../proxy/client/verdict-cache.js";
import type { Appraisal } from "../../proxy/evidence/appraise.js";
import type { TcbFields } from "../../proxy/evidence/verdict.js";

const T0 = Date.parse("2026-01-10T00:00:00Z");
const DAY = 86_400_000;

function appraisal(ok: boolean, notAfter: number, tcb: Partial<TcbFields> | null = null): Appraisal {
  return {
    ok,
    failed: ok ? null : { check: "policy.measurement", reason: "x" },
    checks: [],
    quote: null,
    platform: null,
    tcb: tcb as TcbFields | null,
    dev: true,
    at: new Date(T0).toISOString(),
    binding: null,
    certificate: { subject: "CN=x", notBefore: new Date(T0 - DAY).toISOString(), notAfter: new Date(notAfter).toISOString(), key: "EC P-384", extensions: [] },
    policy: "(test)",
    collateral: null,
  };
}

describe("VerdictCache", () => {
  it("reuses an accepted appraisal until the certificate's notAfter", async () => {
    let now = T0;
    let made = 0;
    const cache = new VerdictCache(30 * DAY, 8, () => now);
    const make = async (): Promise<Appraisal> => (made++, appraisal(true, T0 + DAY));
    assert.equal((await cache.get("a", make)).cached, false);
    now = T0 + DAY - 1;
    assert.equal((await cache.get("a", make)).cached, true);
    now = T0 + DAY;
    assert.equal((await cache.get("a", make)).cached, false);
    assert.equal(made, 2);
  });

  it("the collateral's nextUpdate and maxCollateralAge bound it too", async () => {
    let now = T0;
    const cache = new VerdictCache(5 * DAY, 8, () => now);
    const withTcb = (next: number, issued: number) => async () =>
      appraisal(true, T0 + 30 * DAY, { collateralNextUpdate: new Date(next).toISOString(), collateralIssued: new Date(issued).toISOString() });
    await cache.get("next", withTcb(T0 + 2 * DAY, T0 - DAY));
    await cache.get("age", withTcb(T0 + 20 * DAY, T0 - 4 * DAY));
    now = T0 + DAY + 1; // past issued + 5 days for "age"
    assert.equal((await cache.get("age", withTcb(T0 + 20 * DAY, T0))).cached, false);
    assert.equal((await cache.get("next", withTcb(T0 + 2 * DAY, T0 - DAY))).cached, true);
    now = T0 + 2 * DAY;
    assert.equal((await cache.get("next", withTcb(T0 + 3 * DAY, T0))).cached, false);
  });

  it("keeps no rejection, and holds at most maxEntries certificates", async () => {
    const cache = new VerdictCache(30 * DAY, 2, () => T0);
    await cache.get("bad", async () => appraisal(false, T0 + DAY));
    assert.equal(cache.size, 0);
    for (const k of ["a", "b", "c"]) await cache.get(k, async () => appraisal(true, T0 + DAY));
    assert.equal(cache.size, 2);
    assert.equal((await cache.get("a", async () => appraisal(true, T0 + DAY))).cached, false, "the oldest was evicted");
  });

  it("a failed appraisal is not kept, and the error reaches every waiter", async () => {
    const cache = new VerdictCache(30 * DAY, 8, () => T0);
    let calls = 0;
    const boom = async (): Promise<Appraisal> => {
      calls++;
      throw new Error(`boom ${calls}`);
    };
    const waiters = await Promise.allSettled([cache.get("x", boom), cache.get("x", boom), cache.get("x", boom)]);
    assert.equal(calls, 1, "the waiters shared one appraisal");
    for (const w of waiters) {
      assert.equal(w.status, "rejected");
      assert.match(String((w as PromiseRejectedResult).reason), /boom 1/);
    }
    assert.equal(cache.size, 0);
    await assert.rejects(cache.get("x", boom), /boom 2/, "the failure was not kept");
  });
});
