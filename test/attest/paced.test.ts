/**
 * `attestation.dev.quoteLatency`: the paced provider makes one quote at a time, each taking at
 * least the latency (a lower bound, as hardware imposes it: no upper bound is asserted), and a
 * failure reaches its caller without holding up the next quote.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PacedProvider, paced } from "../../proxy/attest/paced.js";
import type { AttestationProvider } from "../../proxy/attest/provider.js";

/** A provider that records how many quotes it is making at once. */
function recording(fail: (i: number) => boolean = () => false) {
  const s = { calls: 0, inFlight: 0, maxInFlight: 0 };
  const p: AttestationProvider = {
    name: "dev",
    dev: true,
    quote: async (rd) => {
      const i = s.calls++;
      s.inFlight++;
      s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
      await new Promise((r) => setImmediate(r));
      s.inFlight--;
      if (fail(i)) throw new Error(`quote ${i} failed`);
      return rd.slice();
    },
  };
  return { p, s };
}

describe("paced provider (attestation.dev.quoteLatency)", () => {
  it("never has two quotes in flight, and each takes at least the latency", async () => {
    const { p, s } = recording();
    const q = paced(p, 20);
    const t0 = performance.now();
    const done: number[] = [];
    const all = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        q.quote(new Uint8Array(64).fill(i)).then((r) => {
          done.push(performance.now() - t0);
          return r[0];
        }),
      ),
    );
    assert.deepEqual(all, [0, 1, 2, 3, 4], "each caller gets its own quote, in order");
    assert.equal(s.maxInFlight, 1);
    // The k-th quote ends no earlier than k latencies after the start (timers may fire a little early: 1 ms slack).
    done.forEach((t, k) => assert.ok(t >= 20 * (k + 1) - 1, `quote ${k} done at ${t.toFixed(1)} ms`));
  });

  it("errors reach their caller, and the next quote still runs, after the latency", async () => {
    const { p, s } = recording((i) => i === 1);
    const q = paced(p, 15);
    const r = [q.quote(new Uint8Array(64)), q.quote(new Uint8Array(64)), q.quote(new Uint8Array(64).fill(9))];
    await r[0];
    await assert.rejects(r[1]!, /quote 1 failed/);
    assert.equal((await r[2]!)[0], 9);
    assert.equal(s.calls, 3);
    assert.equal(s.maxInFlight, 1);
  });

  it("latency 0 is the provider itself; the wrapper keeps its name and dev flag", () => {
    const { p } = recording();
    assert.equal(paced(p, 0), p);
    const w = paced(p, 5);
    assert.ok(w instanceof PacedProvider);
    assert.deepEqual([w.name, w.dev], ["dev", true]);
  });
});
