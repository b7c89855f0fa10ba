/**
 * MCP 2026-07-28 clients through `serve` in front of stdio servers that speak only the legacy
 * (2025) era: the era probe (`server/discover`) reaches the child and its error comes back as the
 * child gave it, so a pinned client fails exactly as it does without the proxy
 * (mcp2-direct.test.ts) and an `auto` client falls back to `initialize` and works. The SDK 1.x
 * client and server-everything keep working through the same serve.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import { connectHttp, connectV1Http, ELICIT_ANSWER, eraOf, MODERN, negotiatedVersion } from "../support/mcp2/client.js";
import { ENVELOPE, serveCommand, serveMcp2, type Served } from "../support/mcp2/serve.js";
import { EVERYTHING } from "../support/everything.js";
import { within } from "../support/wait.js";

const PIN_FAILURE = /^Version negotiation failed: the server did not offer pinned protocol version 2026-07-28 via server\/discover \(no fallback in pin mode\)$/;

const textOf = (r: unknown): string => {
  const c = (r as { content?: Array<{ type: string; text?: string }> }).content?.[0];
  assert.ok(c && c.type === "text", `expected a text block, got ${JSON.stringify(r).slice(0, 300)}`);
  return c.text ?? "";
};

async function pinnedFailure(s: Served): Promise<unknown> {
  return within(
    connectHttp(s.url, { mode: "pin", fetch: await s.fetch() }).then(
      async (c) => {
        await c.close();
        return undefined;
      },
      (e: unknown) => e,
    ),
    30_000,
    "pinned connect",
  );
}

describe("serve in front of a legacy-only stdio server (mcp2 --era legacy)", { timeout: 120_000 }, () => {
  let s: Served;
  before(async () => {
    s = await serveMcp2("legacy");
  });
  after(() => s?.close());

  it("server/discover reaches the child; its -32601 comes back unchanged (404, as the spec maps Method not found)", async () => {
    const discover = { jsonrpc: "2.0", id: "server-discover-probe-1", method: "server/discover", params: { _meta: ENVELOPE } };
    const r = await s.post(discover, { "mcp-protocol-version": MODERN, "mcp-method": "server/discover" });
    assert.equal(r.status, 404);
    assert.equal(r.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(r.body), { jsonrpc: "2.0", id: "server-discover-probe-1", error: { code: -32601, message: "Method not found" } });
  });

  it("a pinned 2026-07-28 client fails with ERA_NEGOTIATION_FAILED, as it does directly", async () => {
    const err = await pinnedFailure(s);
    assert.ok(err instanceof SdkError, `an SdkError, got ${String(err)}`);
    assert.equal(err.code, SdkErrorCode.EraNegotiationFailed);
    assert.match(err.message, PIN_FAILURE);
  });

  it("an auto client falls back to initialize (2025-11-25) and works, elicitation included", async () => {
    const c = await within(connectHttp(s.url, { mode: "auto", fetch: await s.fetch() }), 30_000, "auto connect");
    try {
      assert.equal(negotiatedVersion(c.client), "2025-11-25");
      assert.equal(eraOf(c.client), "legacy");
      assert.equal(textOf(await within(c.client.callTool({ name: "ask", arguments: { question: "Fallback?" } }), 10_000, "ask")), `answer: ${ELICIT_ANSWER}`);
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
  });
});

describe("serve in front of server-everything (SDK 1.x, stdio)", { timeout: 120_000 }, () => {
  let s: Served;
  before(async () => {
    s = await serveCommand([process.execPath, EVERYTHING, "stdio"]);
  });
  after(() => s?.close());

  it("the SDK 1.x client: initialize, tools/list, echo", async () => {
    const c = await within(connectV1Http(s.url, (await s.fetch()) as never), 20_000, "v1 connect");
    try {
      const tools = await within(c.client.listTools(), 10_000, "tools/list");
      assert.ok(tools.tools.some((t) => t.name === "echo"));
      assert.match(textOf(await within(c.client.callTool({ name: "echo", arguments: { message: "1.x through serve" } }), 10_000, "echo")), /1\.x through serve/);
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
  });

  it("a v2 client: pinned fails as against any legacy server, auto falls back and works", async () => {
    const err = await pinnedFailure(s);
    assert.ok(err instanceof SdkError && err.code === SdkErrorCode.EraNegotiationFailed, String(err));
    const c = await within(connectHttp(s.url, { mode: "auto", fetch: await s.fetch() }), 30_000, "auto connect");
    try {
      assert.equal(eraOf(c.client), "legacy");
      assert.match(textOf(await within(c.client.callTool({ name: "echo", arguments: { message: "v2 fallback" } }), 10_000, "echo")), /v2 fallback/);
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
  });
});
