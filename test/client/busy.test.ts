/**
 * A busy server is not a failed attestation (DESIGN.md §9): a client past its share of fresh
 * quotes is told 429 with a Retry-After, and the connector asks again on the same connection
 * within its deadline. Past the deadline the verdict says busy, and rejectionOf does not count it
 * as a rejection, so a bridge answers that request with an error and keeps serving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AttestationRejectedError } from "../../proxy/client/errors.js";
import { rejectionOf, verifyRemote } from "../../proxy/client/connector.js";
import { startHttpBridge } from "../../proxy/client/bridge/listen.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { sleep, within } from "../support/wait.js";
import { policyFor, startDevServe, type Served } from "./harness.js";

const SHARE = 30;
/** Seconds per quote of the second test's share: far above the second a server waits for a token. */
const REFILL_S = 10;

describe("busy evidence endpoint", { timeout: 120_000 }, () => {
  let s: Served | undefined;
  let up: Upstream | undefined;
  before(async () => {
    up = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
    s = await startDevServe(`upstream: { url: "http://127.0.0.1:${up.port}" }\n`, `{ quotesPerMinute: 10000, quotesPerClientPerMinute: ${SHARE} }`);
  });
  after(async () => {
    await s?.close();
    await up?.close();
  });

  it("past its share, a client waits out Retry-After and is verified within its deadline; a failed check stays a rejection", async () => {
    const policy = await policyFor(s!, { freshness: "exporter" });
    // The share holds SHARE quotes at once: every connection past it is told 429 first.
    const verdicts = [];
    for (let i = 0; i < SHARE + 2; i++) verdicts.push(await verifyRemote(`${s!.base}/mcp`, { policy }));
    for (const [i, v] of verdicts.entries()) assert.equal(v.ok, true, `connection ${i}: ${JSON.stringify(v.failed)}`);

    const wrong = await verifyRemote(`${s!.base}/mcp`, { policy: await policyFor(s!, { measurements: [{ mrenclave: "00".repeat(32) }] }) });
    assert.equal(wrong.ok, false);
    assert.ok(rejectionOf(new AttestationRejectedError(wrong)));
  });

  it("with no time left the verdict is busy, not rejected; a bridge whose new connections find the remote busy answers those requests with an error and keeps serving", async () => {
    // A serve of its own whose share refills slowly (one quote per REFILL_S): a server lets a
    // request wait for a token at most a second away, so only a far one makes the burst below busy.
    const slow = await startDevServe(`upstream: { url: "http://127.0.0.1:${up!.port}" }\n`, `{ quotesPerMinute: 10000, quotesPerClientPerMinute: ${60 / REFILL_S} }`);
    const policy = await policyFor(slow, { freshness: "exporter" });
    const logs: string[] = [];
    const bridge = await startHttpBridge({ remote: new URL(`${slow.base}/mcp`), policy, log: (l) => logs.push(l), connectTimeoutMs: 1200, listen: { host: "127.0.0.1", port: 0 } });
    let exited: number | null = null;
    void bridge.done.then((c) => (exited = c));
    try {
      // Spend the share, one quote per connection asked one after another (concurrent connections
      // share batched quotes, so a burst alone does not exhaust a share). The loop ends at the
      // first busy verdict, just after a token was spent: the next is about REFILL_S away.
      let spent = 0;
      let last = await verifyRemote(`${slow.base}/mcp`, { policy, connectTimeoutMs: 1200 });
      while (spent < 60 / REFILL_S && last.ok) {
        spent++;
        last = await verifyRemote(`${slow.base}/mcp`, { policy, connectTimeoutMs: 1200 });
      }
      // A bound shorter than the Retry-After leaves no time to wait: the verdict says busy.
      assert.equal(last.ok, false, "the share never ran out");
      assert.equal(last.failed?.check, "freshness.response");
      assert.match(last.failed?.reason ?? "", /answered 429/);
      assert.equal(last.freshness.busy, true);
      assert.equal(rejectionOf(new AttestationRejectedError(last)), null, "a busy remote is not a rejection");
      // Concurrent requests need connections of their own, each asking for evidence the spent share cannot pay for.
      const statuses = await within(
        Promise.all(Array.from({ length: SHARE + 10 }, () => fetch(`http://127.0.0.1:${bridge.address.port}/mcp`, { method: "POST", body: "{}" }).then((r) => r.status))),
        60_000,
        "concurrent requests through the bridge",
      );
      assert.ok(
        statuses.some((c) => c !== 200),
        `some connection found the remote busy: ${statuses.join(",")}`,
      );
      assert.ok(
        logs.some((l) => /the remote is busy/.test(l)),
        logs.join("\n"),
      );
      assert.equal(exited, null, `the bridge exited: ${logs.join("\n")}`);
      // Once the share refills, the same bridge serves again.
      await sleep(REFILL_S * 1000 + 500);
      const again = await fetch(`http://127.0.0.1:${bridge.address.port}/mcp`, { method: "POST", body: "{}" });
      assert.equal(again.status, 200);
      assert.equal(exited, null);
    } finally {
      await bridge.close();
      await slow.close();
    }
  });
});
