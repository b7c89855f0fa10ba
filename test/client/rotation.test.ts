/**
 * The verdict cache: one appraisal per certificate while it holds, shared by concurrent
 * connections; a rotated certificate is appraised again; freshness is asked on every connection.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { devCollateral, writeCollateralDirectory } from "../../proxy/attest/dev/collateral.js";
import { attestedFetch, type AttestedFetch, type ConnectionVerdict } from "../../proxy/client/connector.js";
import { collateralSource } from "../../proxy/collateral/source.js";
import type { CollateralSource } from "../../proxy/evidence/appraise.js";

import { countingUpstream, policyFor, startDevServe, type CountingUpstream, type Served } from "./harness.js";
import { within } from "../support/wait.js";

describe("verdict cache and certificate rotation", { timeout: 60_000 }, () => {
  let up: CountingUpstream | undefined;
  let s: Served | undefined;
  let fetch: AttestedFetch | undefined;
  const verdicts: ConnectionVerdict[] = [];
  /** Appraisals counted where every appraisal must go: the collateral source (tcb.require: true). */
  let appraisals = 0;

  before(async () => {
    up = await countingUpstream(300);
    s = await startDevServe(`upstream: { url: "http://127.0.0.1:${up.port}" }\n`);
    const dir = join(s.dir, "collateral");
    await writeCollateralDirectory(dir, devCollateral(s.provider.pki));
    const policy = await policyFor(s, { tcb: { require: true, acceptStatuses: ["UpToDate"] }, collateral: { path: dir } });
    const real = collateralSource(policy);
    const counting: CollateralSource = {
      forQuote: (q) => {
        appraisals++;
        return real.forQuote(q);
      },
    };
    fetch = attestedFetch({ policy, collateral: counting, onVerdict: (v) => verdicts.push(v) });
  });
  after(async () => {
    await fetch?.close();
    await s?.close();
    await up?.close();
  });

  const get = async (): Promise<void> => {
    const r = await within(fetch!(`${s!.base}/mcp`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } }), 15_000, "attested POST");
    assert.equal(r.status, 200);
    await r.text();
  };
  /** Make the next request need a new connection: the server drops the idle ones. */
  const dropConnections = async (): Promise<void> => {
    s!.running.server.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
  };

  it("a second connection to the same certificate reuses the verdict; freshness is asked again", async () => {
    await get();
    assert.equal(verdicts.length, 1);
    assert.equal(appraisals, 1);
    assert.equal(verdicts[0]!.cached, false);
    assert.equal(verdicts[0]!.tcb?.status, "UpToDate");
    await dropConnections();
    await get();
    assert.equal(verdicts.length, 2, "a new connection was made and verified");
    assert.equal(appraisals, 1, "the certificate was not appraised again");
    assert.equal(verdicts[1]!.cached, true);
    assert.equal(verdicts[1]!.fingerprint, verdicts[0]!.fingerprint);
    assert.notEqual(verdicts[1]!.freshness.nonce, verdicts[0]!.freshness.nonce, "freshness is per connection");
    assert.notEqual(verdicts[1]!.freshness.exporter, verdicts[0]!.freshness.exporter);
  });

  it("after rotate(), the new certificate is appraised again", async () => {
    const old = verdicts.at(-1)!.fingerprint;
    const next = await s!.running.identity.rotate();
    await dropConnections();
    const n = verdicts.length;
    const a = appraisals;
    await get();
    assert.equal(verdicts.length, n + 1);
    assert.equal(appraisals, a + 1);
    const v = verdicts.at(-1)!;
    assert.equal(v.cached, false);
    assert.equal(v.fingerprint, next.fingerprint);
    assert.notEqual(v.fingerprint, old);
    assert.equal(v.ok, true);
  });

  it("concurrent connections to a new certificate share one appraisal", async () => {
    await s!.running.identity.rotate();
    await dropConnections();
    const n = verdicts.length;
    const a = appraisals;
    // The upstream holds each answer 300 ms, so three requests at once need three connections.
    await Promise.all([get(), get(), get()]);
    assert.equal(verdicts.length, n + 3);
    assert.equal(appraisals, a + 1);
    assert.equal(new Set(verdicts.slice(n).map((v) => v.fingerprint)).size, 1);
    assert.equal(new Set(verdicts.slice(n).map((v) => v.freshness.nonce)).size, 3);
  });
});
