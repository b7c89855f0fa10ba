/**
 * serve with the v2 test server (dual era) as its stdio child, as the CLI runs it: a 20 MiB tool
 * result arrives whole to the v2 client (legacy era and `auto`) and to the SDK 1.x client over
 * attestedFetch; under `upstream.maxMessageSize: 1MiB` a 2 MiB result answers its own request with
 * an error naming the limit and the next call goes to the same child; a foreign `Origin`,
 * `Origin: null` and a foreign `Host` get 403 before any child is spawned, a listed Origin is served.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Client } from "@modelcontextprotocol/client";
import type { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { attestedFetch, type AttestedFetch } from "../../proxy/client/connector.js";
import { buildPolicy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { connectHttp, connectV1Http, type Mode } from "../support/mcp2/client.js";
import { SERVER_JS } from "../support/mcp2/spawn.js";
import { childrenOf, devDir, fetchVia, pinnedAgent, spawnServe, type SpawnedServe } from "../support/robust.js";
import { tempDir } from "../support/wait.js";

const MiB = 1024 * 1024;
const child = `upstream:\n  command: ["${process.execPath}", "${SERVER_JS}", "--stdio", "--era", "dual"]\n`;

async function fetchFor(s: SpawnedServe): Promise<AttestedFetch> {
  const rootPath = join(devDir(), "root.pem");
  const v = await verifyRaTlsCertificate(s.certDer, { trustRoots: [await readFile(rootPath, "utf8")] });
  assert.ok(v.ok && v.quote?.teeType === "SGX", `the served certificate does not verify: ${JSON.stringify(v.failed)}`);
  const doc = { trustRoots: [rootPath], measurements: [{ mrenclave: v.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" };
  return attestedFetch(await buildPolicy(doc, "(test policy)", tempDir("amcp-limits-"), (p) => readFile(p, "utf8")));
}

type AnyClient = Client | V1Client;

async function connect(s: SpawnedServe, f: AttestedFetch, kind: Mode | "v1"): Promise<{ client: AnyClient; close(): Promise<void> }> {
  const url = `https://127.0.0.1:${s.port}/mcp`;
  return kind === "v1" ? connectV1Http(url, f) : connectHttp(url, { mode: kind, fetch: f, timeoutMs: 30_000 });
}

async function call(c: AnyClient, name: string, args: Record<string, unknown>): Promise<string> {
  const params = { name, arguments: args };
  // The two SDKs take the request options in different places.
  const r = (await ("getProtocolEra" in c ? c.callTool(params, { timeout: 60_000 }) : c.callTool(params, undefined, { timeout: 60_000 }))) as { content?: Array<{ type: string; text?: string }> };
  const block = r.content?.[0];
  assert.ok(block?.type === "text", `expected a text block, got ${JSON.stringify(r).slice(0, 300)}`);
  return block.text ?? "";
}

describe("serve, stdio upstream: a 20 MiB tool result under the default upstream.maxMessageSize", { timeout: 120_000, concurrency: true }, () => {
  let s: SpawnedServe;
  let f: AttestedFetch;
  before(async () => {
    s = await spawnServe(child);
    f = await fetchFor(s);
  });
  after(async () => {
    await f?.close();
    await s?.stop();
  });

  for (const kind of ["pin", "auto", "legacy", "v1"] as const) {
    it(`arrives whole: ${kind === "v1" ? "SDK 1.x client" : `v2 client, ${kind}`} over attestedFetch`, async (t) => {
      const c = await connect(s, f, kind);
      if ("getProtocolEra" in c.client) t.diagnostic(`era: ${c.client.getProtocolEra()}`);
      try {
        const text = await call(c.client, "big", { mb: 20 });
        assert.equal(text.length, 20 * MiB);
        assert.ok(/^x+$/.test(text));
      } finally {
        await c.close();
      }
    });
  }
});

describe("serve, stdio upstream: upstream.maxMessageSize 1MiB, allowedOrigins, Host", { timeout: 120_000 }, () => {
  let s: SpawnedServe;
  let f: AttestedFetch;
  const allowed = "https://app.example";
  /** Where the child notes each `wait_cancel` it starts: what reached a child. */
  const started = join(tempDir("amcp-limits-log-"), "started.log");
  before(async () => {
    s = await spawnServe(`${child}  env: { MCP2_CANCEL_LOG: "${started}" }\n  maxMessageSize: 1MiB\n  allowedOrigins: ["${allowed}"]\n`);
    f = await fetchFor(s);
  });
  after(async () => {
    await f?.close();
    await s?.stop();
  });

  for (const kind of ["pin", "legacy", "v1"] as const) {
    it(`a 2 MiB result answers its request with an error naming the limit; the next call works on the same child (${kind === "v1" ? "SDK 1.x" : `v2 ${kind}`})`, async () => {
      const before = new Set(childrenOf(s.pid));
      const c = await connect(s, f, kind);
      try {
        assert.equal(await call(c.client, "echo", { message: "first" }), "first");
        const serving = childrenOf(s.pid);
        // A legacy session has a child of its own; a modern client is served by the shared pool.
        if (kind !== "pin") assert.equal(serving.filter((p) => !before.has(p)).length, 1, `one child for the session: ${serving.join(",")}`);
        await assert.rejects(call(c.client, "big", { mb: 2 }), /exceeds upstream\.maxMessageSize \(1 MiB\)/);
        assert.equal(await call(c.client, "echo", { message: "still here" }), "still here");
        assert.deepEqual(childrenOf(s.pid), serving, "the same children answered: none replaced, none added");
        // Under the cap it still passes.
        assert.equal((await call(c.client, "big", { mb: 0.5 })).length, MiB / 2);
      } finally {
        await c.close();
      }
    });
  }

  const reached = (): string[] =>
    existsSync(started)
      ? readFileSync(started, "utf8")
          .split("\n")
          .filter((l) => l.startsWith("started"))
      : [];
  const modernCall = JSON.stringify({
    jsonrpc: "2.0",
    id: 77,
    method: "tools/call",
    params: {
      name: "wait_cancel",
      arguments: { ms: 1 },
      _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} },
    },
  });
  const modernHeaders = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "wait_cancel",
  };

  it("a modern tools/call with a foreign Origin gets 403 and reaches no child; with the listed Origin it does", async () => {
    const agent = pinnedAgent(s.certPem);
    try {
      const n = reached().length;
      const refused = await fetchVia(agent, s.port, "/mcp", { method: "POST", headers: { ...modernHeaders, origin: "https://evil.example" }, body: modernCall });
      assert.equal(refused.status, 403, refused.body);
      assert.match(refused.body, /Origin/);
      const ok = await fetchVia(agent, s.port, "/mcp", { method: "POST", headers: { ...modernHeaders, origin: allowed }, body: modernCall });
      assert.equal(ok.status, 200, ok.body);
      assert.match(ok.body, /waited 1/);
      // The child wrote its line before it answered: one, the allowed request's.
      assert.equal(reached().length, n + 1);
    } finally {
      agent.destroy();
    }
  });

  const init = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });
  const mcpHeaders = { "content-type": "application/json", accept: "application/json, text/event-stream" };

  it("a foreign Origin, Origin: null and a foreign Host get 403 naming the header, and no child is spawned; a listed Origin is served", async () => {
    const before = childrenOf(s.pid);
    const agent = pinnedAgent(s.certPem);
    try {
      const refused: [string, Record<string, string>, RegExp][] = [
        ["/mcp", { origin: "https://evil.example" }, /Origin "https:\/\/evil\.example" is not allowed \(upstream\.allowedOrigins\)/],
        ["/mcp", { origin: "null" }, /Origin "null" is not allowed/],
        ["/mcp", { origin: `${allowed}.evil.example` }, /Origin/],
        ["/mcp", { host: `rebound.evil.example:${s.port}` }, /Host "rebound\.evil\.example:\d+" is not a name this server is reached by \(upstream\.publicHosts\)/],
        ["/sse", { origin: "https://evil.example" }, /Origin/],
      ];
      for (const [path, extra, why] of refused) {
        const post = path === "/mcp";
        const r = await fetchVia(agent, s.port, path, { method: post ? "POST" : "GET", headers: { ...(post ? mcpHeaders : { accept: "text/event-stream" }), ...extra }, ...(post && { body: init }) });
        assert.equal(r.status, 403, `${path} ${JSON.stringify(extra)}: ${r.status} ${r.body}`);
        const body = JSON.parse(r.body) as { jsonrpc: string; id: unknown; error: { message: string } };
        assert.equal(body.jsonrpc, "2.0");
        assert.equal(body.id, null);
        assert.match(body.error.message, why);
      }
      assert.deepEqual(childrenOf(s.pid), before, "no child was spawned for a refused request");

      // Listed (in another spelling of the same origin), with the loopback Host every client sends.
      const ok = await fetchVia(agent, s.port, "/mcp", { method: "POST", headers: { ...mcpHeaders, origin: "HTTPS://app.example:443", host: `localhost:${s.port}` }, body: init });
      assert.equal(ok.status, 200, ok.body);
      const sid = ok.headers["mcp-session-id"];
      assert.ok(typeof sid === "string");
      assert.equal(childrenOf(s.pid).length, before.length + 1, "the listed Origin's session has its child");
      const del = await fetchVia(agent, s.port, "/mcp", { method: "DELETE", headers: { "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18", origin: allowed } });
      assert.ok(del.status === 200 || del.status === 204, `${del.status} ${del.body}`);
    } finally {
      agent.destroy();
    }
  });
});
