/**
 * The official MCP SDK client through attestedFetch against serve (dev provider, server-everything
 * over stdio): initialize, tools/list and a streaming tool call, under each freshness mode.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { attestedFetch, type ConnectionVerdict } from "../../proxy/client/connector.js";
import { EVERYTHING } from "../support/everything.js";

import { policyFor, startDevServe, type Served } from "./harness.js";
import { within } from "../support/wait.js";

describe("the MCP SDK client over attestedFetch", { timeout: 120_000 }, () => {
  let s: Served | undefined;
  before(async () => {
    s = await startDevServe(`upstream: { command: ["${process.execPath}", "${EVERYTHING}", "stdio"], maxSessions: 4 }\n`);
  });
  after(() => s?.close());

  for (const mode of ["exporter", "nonce", "certificate"] as const) {
    it(`freshness ${mode}: initialize, tools/list, a streaming tool call with progress`, async () => {
      const verdicts: ConnectionVerdict[] = [];
      const fetch = attestedFetch({ policy: await policyFor(s!, { freshness: mode }), onVerdict: (v) => verdicts.push(v) });
      const transport = new StreamableHTTPClientTransport(new URL(`${s!.base}/mcp`), { fetch });
      const client = new Client({ name: `attested-${mode}`, version: "1.0.0" });
      try {
        await within(client.connect(transport), 20_000, "initialize");
        const tools = await within(client.listTools(), 10_000, "tools/list");
        assert.ok(
          tools.tools.some((t) => t.name === "trigger-long-running-operation"),
          JSON.stringify(tools.tools.map((t) => t.name)),
        );

        const progress: number[] = [];
        const t0 = Date.now();
        const result = await within(
          client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 1.5, steps: 3 } }, undefined, { onprogress: () => progress.push(Date.now() - t0), timeout: 20_000 }),
          25_000,
          "streaming tool call",
        );
        const done = Date.now() - t0;
        assert.match(JSON.stringify(result.content), /completed/i);
        assert.ok(progress.length >= 2, `progress notifications: ${progress.length}`);
        assert.ok(progress[0]! < done - 500, `first progress at ${progress[0]} ms, result at ${done} ms: streamed, not bunched`);
        await transport.terminateSession();
      } finally {
        await client.close();
        await fetch.close();
      }

      assert.ok(verdicts.length >= 1, "at least one connection was verified");
      for (const v of verdicts) {
        assert.equal(v.ok, true, JSON.stringify(v.failed));
        assert.equal(v.dev, true);
        assert.equal(v.freshness.mode, mode);
        assert.equal(v.freshness.ok, true, v.freshness.detail);
        assert.equal(v.fingerprint, s!.running.identity.current.fingerprint);
        const fresh = v.checks.filter((c) => c.check.startsWith("freshness."));
        if (mode === "certificate") {
          assert.deepEqual(fresh, []);
          assert.equal(v.freshness.nonce, null);
        } else {
          assert.deepEqual(
            fresh.map((c) => c.check),
            ["freshness.response", "freshness.certificate", "freshness.claims", "freshness.proof", "freshness.report-data", "freshness.quote"],
          );
          assert.ok(fresh.every((c) => c.ok));
          assert.match(v.freshness.nonce ?? "", /^[0-9a-f]{64}$/);
          if (mode === "exporter") assert.match(v.freshness.exporter ?? "", /^[0-9a-f]{64}$/);
          else assert.equal(v.freshness.exporter, null);
        }
      }
      // Each connection asked with its own nonce.
      const nonces = verdicts.map((v) => v.freshness.nonce).filter((n) => n !== null);
      assert.equal(new Set(nonces).size, nonces.length);
    });
  }
});
