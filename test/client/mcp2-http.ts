/**
 * The HTTP paths a client of the proxy takes to an HTTP upstream, with real parts: the v2 test
 * server (`test/support/mcp2/server.ts --http 0 --era dual`) as the upstream, `serve` in-process
 * with the dev provider and the default config, the policy that trusts it, and `bridge --listen`
 * in-process in front of it. Plus the checks every v2 client must pass on each path.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { it } from "node:test";
import type { Client } from "@modelcontextprotocol/client";
import { startHttpBridge, type HttpBridge } from "../../proxy/client/bridge/listen.js";
import type { Policy } from "../../proxy/evidence/policy.js";
import { ELICIT_ANSWER, MODERN, SAMPLE_PREFIX, eraOf, negotiatedVersion, type Seen } from "../support/mcp2/client.js";
import { notificationsAfterTouch, progressArrives } from "../support/mcp2/checks.js";
import { startHttpServer, waitFor, within, type HttpServer } from "../support/mcp2/spawn.js";
import { tempDir } from "../support/wait.js";
import { policyFor, startDevServe, type Served } from "./harness.js";

export interface Paths {
  upstream: HttpServer;
  served: Served;
  policy: Policy;
  bridge: HttpBridge;
  /** serve's MCP endpoint (https, attested) and the bridge's (plain HTTP on loopback). */
  serveUrl: string;
  bridgeUrl: string;
  /** The upstream's wait_cancel log. */
  cancelLog: string;
  close(): Promise<void>;
}

/** Upstream, serve (default config but for the test scaffolding) and a bridge in front of it. */
export async function startPaths(): Promise<Paths> {
  const cancelLog = join(tempDir("amcp-mcp2-http-"), "cancel.log");
  writeFileSync(cancelLog, "");
  const upstream = await startHttpServer("dual", { env: { MCP2_CANCEL_LOG: cancelLog } });
  const served = await startDevServe(`upstream: { url: "http://127.0.0.1:${upstream.port}" }\n`);
  // The certificate's own evidence: these tests are about MCP, and fresh evidence per connection
  // would spend serve's per-client quote share on the many connections they open.
  const policy = await policyFor(served, { freshness: "certificate" });
  const bridge = await startHttpBridge({ remote: new URL(`${served.base}/mcp`), policy, log: () => {}, listen: { host: "127.0.0.1", port: 0 } });
  return {
    upstream,
    served,
    policy,
    bridge,
    serveUrl: `${served.base}/mcp`,
    bridgeUrl: `http://127.0.0.1:${bridge.address.port}/mcp`,
    cancelLog,
    close: async () => {
      await bridge.close();
      await served.close();
      await upstream.stop();
      rmSync(dirname(cancelLog), { recursive: true, force: true });
    },
  };
}

export const textOf = (r: { content?: unknown }): string => {
  const c = (r.content as Array<{ type: string; text?: string }> | undefined)?.[0];
  assert.ok(c && c.type === "text", `expected a text block, got ${JSON.stringify(r).slice(0, 300)}`);
  return c.text ?? "";
};

export function cancelLines(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * The v2 client checks, registered as tests of the enclosing describe: `client()` is connected in
 * its before(). Run them one at a time (the cancel log is shared).
 */
export function v2ClientChecks(client: () => { client: Client; seen: Seen }, cancelLog: () => string): void {
  it("negotiates 2026-07-28 through server/discover", () => {
    const c = client().client;
    assert.equal(negotiatedVersion(c), MODERN);
    assert.equal(eraOf(c), "modern");
    assert.equal(c.getServerVersion()?.name, "mcp2-test-server");
  });

  it("echo", async () => {
    const r = await within(client().client.callTool({ name: "echo", arguments: { message: "through the proxy" } }), 15_000, "echo");
    assert.equal(textOf(r), "through the proxy");
  });

  it("progress arrives while the call runs", async () => {
    await progressArrives(client().client, 4, 25_000);
  });

  it("elicitation and sampling round trips (MRTR: input_required, then the retry)", async () => {
    const { client: c, seen } = client();
    const before = seen.elicitations.length;
    const a = await within(c.callTool({ name: "ask", arguments: { question: "Through the proxy?" } }), 15_000, "ask");
    assert.equal(textOf(a), `answer: ${ELICIT_ANSWER}`);
    assert.equal(seen.elicitations.length, before + 1);
    const s = await within(c.callTool({ name: "sample", arguments: { prompt: "Say hi" } }), 15_000, "sample");
    assert.equal(textOf(s), `sampled: ${SAMPLE_PREFIX}Say hi`);
  });

  it("resources/read and prompts/get", async () => {
    const c = client().client;
    const r = await within(c.readResource({ uri: "mcp2://hello" }), 15_000, "read");
    assert.equal((r.contents[0] as { text?: string }).text, "hello from mcp2");
    const p = await within(c.getPrompt({ name: "greet", arguments: { name: "Ada" } }), 15_000, "prompt");
    assert.deepEqual(p.messages[0]?.content, { type: "text", text: "Hello, Ada!" });
  });

  it("subscriptions/listen delivers tools/list_changed and resources/updated after touch", async () => {
    await notificationsAfterTouch(client().client, 15_000);
  });

  it("cancelling a call (AbortSignal) reaches the server", async () => {
    const log = cancelLog();
    const from = cancelLines(log).length;
    const ac = new AbortController();
    const settled = client()
      .client.callTool({ name: "wait_cancel", arguments: { ms: 30_000 } }, { signal: ac.signal, timeout: 40_000 })
      .then(
        () => "resolved",
        (e: Error) => e,
      );
    const started = (): string | undefined =>
      cancelLines(log)
        .slice(from)
        .find((l) => l.startsWith("started "));
    await waitFor(() => started() !== undefined, 15_000, "wait_cancel started");
    const id = started()!.slice("started ".length);
    ac.abort();
    assert.ok((await within(settled, 10_000, "the aborted call settles")) instanceof Error);
    await waitFor(() => cancelLines(log).slice(from).includes(`cancelled ${id}`), 10_000, `cancelled ${id} in the cancel log`);
  });
}
