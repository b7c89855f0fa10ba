/**
 * The share rules on their own, with an explicit clock: who counts as one client, the honest
 * Retry-After (a retry at that time succeeds, one second earlier does not), a client refused by
 * the global cap keeping its own share, and the per-client table staying bounded however many
 * addresses ask.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionShares, MAX_TRACKED_CLIENTS, RateShares, TokenBucket, clientOfAddress } from "../../proxy/server/shares.js";

describe("shares: who is one client", () => {
  it("IPv4 as is (mapped or not); IPv6 by its /64; nothing known → one bucket", () => {
    assert.equal(clientOfAddress("127.0.0.2"), "127.0.0.2");
    assert.equal(clientOfAddress("::ffff:10.1.2.3"), "10.1.2.3");
    assert.equal(clientOfAddress("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert.equal(clientOfAddress("2001:db8:1:2:ffff:ffff:ffff:fffe"), "2001:db8:1:2::/64");
    assert.equal(clientOfAddress("2001:db8::1"), "2001:db8:0:0::/64");
    assert.equal(clientOfAddress("::1"), "0:0:0:0::/64");
    assert.equal(clientOfAddress(undefined), "unknown");
  });
});

describe("shares: rates", () => {
  it("a bucket's Retry-After is when a retry succeeds", () => {
    const t0 = 1_000_000;
    const b = new TokenBucket(10, 10, t0);
    for (let i = 0; i < 10; i++) {
      assert.equal(b.wait(t0), 0);
      b.take(t0);
    }
    const wait = b.wait(t0);
    assert.equal(wait, 6);
    assert.ok(b.wait(t0 + (wait - 1) * 1000) > 0);
    assert.equal(b.wait(t0 + wait * 1000), 0);
  });

  it("past a share: 429 for that client only; past the cap: 503 for everyone, and a refused client keeps its share", () => {
    const t = 5_000_000;
    const r = new RateShares(12, 5, MAX_TRACKED_CLIENTS, t);
    for (let i = 0; i < 5; i++) assert.deepEqual(r.take("a", t), { ok: true });
    const past = r.take("a", t);
    assert.equal(past.ok, false);
    assert.ok(!past.ok && past.status === 429 && past.scope === "client" && past.retryAfter === 12);
    for (let i = 0; i < 5; i++) assert.deepEqual(r.take("b", t), { ok: true });
    assert.deepEqual(r.take("c", t), { ok: true });
    assert.deepEqual(r.take("c", t), { ok: true });
    const full = r.take("d", t);
    assert.ok(!full.ok && full.status === 503 && full.scope === "global" && full.retryAfter === 5, JSON.stringify(full));
    // Once the cap has a token again, d's own share is whole.
    assert.deepEqual(r.take("d", t + 5000), { ok: true });
  });

  it(`many addresses do not grow the table past ${MAX_TRACKED_CLIENTS}: the least recently seen are forgotten, a client seen lately stays held to its spent share`, () => {
    const t = 9_000_000;
    const r = new RateShares(1_000_000, 2, 100, t);
    r.take("spender", t);
    r.take("spender", t);
    for (let i = 0; i < 10_000; i++) r.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, t + 60_000);
    assert.ok(r.size <= 100, `${r.size} clients remembered`);
    const big = new RateShares(1_000_000, 2, MAX_TRACKED_CLIENTS, t);
    for (let i = 0; i < 3 * MAX_TRACKED_CLIENTS; i++) big.take(`c${i}`, t);
    assert.ok(big.size <= MAX_TRACKED_CLIENTS);
    // A client that spent its share, seen last, is still held to it.
    big.take("x", t);
    big.take("x", t);
    for (let i = 0; i < 10; i++) big.take(`late${i}`, t);
    assert.equal(big.take("x", t).ok, false);
  });
});

describe("shares: connections", () => {
  it("a client's share, then the cap; a release frees a slot; the table holds only open clients", () => {
    const c = new ConnectionShares(3, 2);
    assert.equal(c.admit("a"), "ok");
    assert.equal(c.admit("a"), "ok");
    assert.equal(c.admit("a"), "client");
    assert.equal(c.admit("b"), "ok");
    assert.equal(c.admit("c"), "global");
    c.release("a");
    assert.equal(c.admit("c"), "ok");
    assert.equal(c.count, 3);
    for (const k of ["a", "b", "c"]) c.release(k);
    c.release("nobody");
    assert.equal(c.count, 0);
  });
});
