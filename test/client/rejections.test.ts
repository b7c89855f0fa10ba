/**
 * Every rejection names its check, and the upstream behind serve receives no request at all: the
 * connector refuses the connection before undici writes the request.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { devCollateral, writeCollateralDirectory } from "../../proxy/attest/dev/collateral.js";
import { attestedFetch, rejectionOf, verifyRemote, AttestationRejectedError, type ConnectionVerdict } from "../../proxy/client/connector.js";
import { buildPolicy } from "../../proxy/evidence/policy.js";
import type { CheckName } from "../../proxy/evidence/verdict.js";

import { countingUpstream, policyFor, startDevServe, type CountingUpstream, type Served } from "./harness.js";
import { within } from "../support/wait.js";

describe("rejections before a byte reaches the upstream", { timeout: 60_000 }, () => {
  let up: CountingUpstream | undefined;
  let s: Served | undefined;
  before(async () => {
    up = await countingUpstream();
    s = await startDevServe(`upstream: { url: "http://127.0.0.1:${up.port}" }\n`);
  });
  after(async () => {
    await s?.close();
    await up?.close();
  });

  /** POST /mcp through the attested fetch; the verdict of the (single) connection. */
  async function attempt(override: Record<string, unknown>): Promise<{ response: Response | null; error: unknown; verdicts: ConnectionVerdict[] }> {
    const verdicts: ConnectionVerdict[] = [];
    const fetch = attestedFetch({ policy: await policyFor(s!, override), onVerdict: (v) => verdicts.push(v) });
    try {
      const response = await within(
        fetch(`${s!.base}/mcp`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' }),
        15_000,
        "attested POST",
      );
      await response.text();
      return { response, error: null, verdicts };
    } catch (error) {
      return { response: null, error, verdicts };
    } finally {
      await fetch.close();
    }
  }

  it("control: with the right policy the request reaches the upstream (the counter counts)", async () => {
    const before = up!.seen.length;
    const r = await attempt({});
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.response?.status, 200);
    assert.equal(up!.seen.length, before + 1);
    assert.equal(up!.seen.at(-1), "POST /mcp");
  });

  const cases: { name: string; check: CheckName; override: (s: Served) => Promise<Record<string, unknown>>; reason: RegExp }[] = [
    { name: "a wrong measurement", check: "policy.measurement", override: async () => ({ measurements: [{ mrenclave: "ab".repeat(32) }] }), reason: /mrenclave [0-9a-f]{64}.*match no entry/ },
    { name: "a debug enclave without allowDebug", check: "policy.debug", override: async () => ({ allowDebug: false }), reason: /DEBUG/ },
    { name: "an untrusted root (trustRoots: [intel] for dev evidence)", check: "pck.chain", override: async () => ({ trustRoots: ["intel"] }), reason: /./ },
    {
      name: "an unacceptable TCB status (OutOfDate, acceptStatuses [UpToDate])",
      check: "policy.tcb-status",
      override: async (s) => {
        const dir = join(s.dir, "collateral-outofdate");
        await writeCollateralDirectory(dir, devCollateral(s.provider.pki, { status: "OutOfDate", advisoryIds: ["INTEL-SA-00615"] }));
        return { tcb: { require: true, acceptStatuses: ["UpToDate"] }, collateral: { path: dir } };
      },
      reason: /OutOfDate is not in acceptStatuses/,
    },
    {
      name: "expired collateral (nextUpdate has passed)",
      check: "collateral.fresh",
      override: async (s) => {
        const dir = join(s.dir, "collateral-expired");
        await writeCollateralDirectory(dir, devCollateral(s.provider.pki, { issued: new Date(Date.now() - 40 * 86_400_000), nextUpdate: new Date(Date.now() - 86_400_000) }));
        return { tcb: { require: true, acceptStatuses: ["UpToDate"] }, collateral: { path: dir } };
      },
      reason: /./,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: rejected at ${c.check}, the upstream sees nothing`, async () => {
      const before = up!.seen.length;
      const r = await attempt(await c.override(s!));
      assert.equal(r.response, null, "the request must not succeed");
      const rejected = rejectionOf(r.error);
      assert.ok(rejected instanceof AttestationRejectedError, `expected an attestation rejection, got ${String(r.error)} (cause ${String((r.error as Error)?.cause)})`);
      assert.equal(rejected.code, "ATTESTATION_REJECTED");
      assert.equal(rejected.verdict.failed?.check, c.check, JSON.stringify(rejected.verdict.failed));
      assert.match(rejected.verdict.failed!.reason, c.reason);
      assert.ok(rejected.message.startsWith(`attestation rejected: ${c.check}: `), rejected.message);
      assert.equal(rejected.verdict.ok, false);
      assert.equal(rejected.verdict.freshness.ok, false, "freshness is not asked of a rejected certificate");
      assert.ok(r.verdicts.length >= 1 && r.verdicts.every((v) => !v.ok), "onVerdict saw the rejection");
      assert.equal(up!.seen.length, before, `the upstream received ${up!.seen.slice(before).join(", ")}`);
    });
  }

  it("an http: URL is refused before any connection (fail closed)", async () => {
    const fetch = attestedFetch(await policyFor(s!));
    try {
      await assert.rejects(fetch(`http://127.0.0.1:${s!.running.address.port}/mcp`), (e: Error & { code?: string }) => e.code === "INSECURE_URL" && /https:/.test(e.message));
    } finally {
      await fetch.close();
    }
  });
});

describe("connection bounds", { timeout: 20_000 }, () => {
  it("a peer that never finishes the handshake: CONNECT_TIMEOUT within the bound, and the socket is closed", async () => {
    const { createServer } = await import("node:net");
    let closed = 0;
    const held = createServer((sock) => {
      sock.on("error", () => {});
      sock.resume();
      sock.on("close", () => closed++);
    });
    await new Promise<void>((r) => held.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (held.address() as { port: number }).port;
      const policy = await buildPolicy({ measurements: "any", tcb: { require: false } }, "(test)", ".", async () => "");
      const t0 = Date.now();
      await assert.rejects(verifyRemote(`https://127.0.0.1:${port}/`, { policy, connectTimeoutMs: 300 }), (e: Error & { code?: string }) => e.code === "CONNECT_TIMEOUT");
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
      const deadline = Date.now() + 2000;
      while (closed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(closed, 1, "the client closed its half-open connection");
    } finally {
      held.close();
    }
  });
});
