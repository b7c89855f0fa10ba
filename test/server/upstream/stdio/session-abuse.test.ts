/**
 * stdio sessions against `serve` as an attacker tries them (issue 17): session ids never in the
 * output, sessions held by clients that left reclaimed or evicted, honest clients served, health
 * and metrics truthful. Real serve process, real children (the v2 test server, legacy era), SDK
 * 1.x client over the verified fetch.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { attestedFetch } from "../../../../proxy/client/connector.js";
import { buildPolicy, type Policy } from "../../../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../../../proxy/evidence/ratls/verify.js";
import { SERVER_JS } from "../../../support/mcp2/spawn.js";
import { devDir, fetchVia, metric, pinnedAgent, scrape, spawnServe, type SpawnedServe } from "../../../support/robust.js";
import { eventually, tempDir, within } from "../../../support/wait.js";

const INIT = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const tag = (id: string): string => createHash("sha256").update(id).digest("hex").slice(0, 8);

async function policyOf(s: SpawnedServe): Promise<Policy> {
  const root = join(devDir(), "root.pem");
  const v = await verifyRaTlsCertificate(s.certDer, { trustRoots: [await readFile(root, "utf8")] });
  assert.ok(v.ok && v.quote?.teeType === "SGX");
  return buildPolicy({ trustRoots: [root], measurements: [{ mrenclave: v.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" }, "(test)", tempDir("amcp-sess-"), (p) =>
    readFile(p, "utf8"),
  );
}

describe("stdio sessions under abuse (serve, legacy sessions)", { timeout: 90_000 }, () => {
  let s: SpawnedServe;
  let policy: Policy;
  before(async () => {
    s = await spawnServe(`upstream:\n  command: ["${process.execPath}", "${SERVER_JS}", "--stdio", "--era", "legacy"]\n  maxSessions: 4\n  initTimeout: 2s\n`, {
      env: { ATTESTABLE_MCP_LOG_LEVEL: "info" },
    });
    policy = await policyOf(s);
  });
  after(() => s?.stop());

  const rawInit = (agent = pinnedAgent(s.certPem)) => fetchVia(agent, s.port, "/mcp", { method: "POST", headers: MCP_HEADERS, body: INIT });

  async function sdkClient(): Promise<{ client: Client; transport: StreamableHTTPClientTransport; close(): Promise<void> }> {
    const f = attestedFetch(policy);
    const transport = new StreamableHTTPClientTransport(new URL(`https://127.0.0.1:${s.port}/mcp`), { fetch: f });
    const client = new Client({ name: "honest", version: "1" });
    await within(client.connect(transport), 10_000, "honest initialize");
    return { client, transport, close: async () => (await client.close(), await f.close()) };
  }

  it("one client opening 20 sessions and leaving: an honest client's initialize then succeeds; evictions and gauges counted", async () => {
    const agent = pinnedAgent(s.certPem);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await rawInit(agent);
      assert.equal(r.status, 200, r.body);
      ids.push(String(r.headers["mcp-session-id"]));
    }
    agent.destroy();
    const honest = await sdkClient();
    try {
      const tools = await within(honest.client.listTools(), 10_000, "tools/list");
      assert.ok(tools.tools.some((t) => t.name === "echo"));
      const sid = honest.transport.sessionId!;
      ids.push(sid);
      const m = await scrape(s.metricsPort);
      // Some are reclaimed by upstream.initTimeout meanwhile, the rest evicted: none refused.
      assert.ok(metric(m, "attestable_mcp_stdio_session_evictions_total") >= 1, m);
      assert.ok(metric(m, "attestable_mcp_stdio_sessions") <= 4);
      assert.ok(metric(m, "attestable_mcp_stdio_children", 'kind="session"') >= 1);
      assert.ok(m.includes('attestable_mcp_stdio_children{kind="modern"}'));
      // The session id a client got never appears in the output; its short hash does.
      const out = s.output();
      for (const id of ids) assert.ok(!out.includes(id), `session id ${id} in serve's output`);
      assert.ok(out.includes(tag(sid)), "the logs name the session by its hash");
    } finally {
      await honest.close();
    }
  });

  it("a session whose client never sends past initialize is reclaimed (upstream.initTimeout), then unknown (404)", async () => {
    const r = await rawInit();
    const sid = String(r.headers["mcp-session-id"]);
    assert.ok(
      await eventually(
        () =>
          s
            .output()
            .split("\n")
            .some((l) => l.includes(tag(sid)) && l.includes("not initialized in time")),
        10_000,
      ),
      "reclaim logged",
    );
    const again = await fetchVia(pinnedAgent(s.certPem), s.port, "/mcp", {
      method: "POST",
      headers: { ...MCP_HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" },
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    });
    assert.equal(again.status, 404);
    assert.ok(!s.output().includes(sid));
  });

  it("past a client's share with none of its sessions idle: 429 with Retry-After; counted as a session share refusal", async () => {
    // Two sessions (the default share of 4), each busy with the standalone GET stream the SDK
    // client opens after initialize; waited for one by one so the second cannot evict the first.
    const streams = async (): Promise<number> => metric(await scrape(s.metricsPort), "attestable_mcp_open_streams", 'kind="sse"');
    const base = await streams();
    const a = await sdkClient();
    let b: Awaited<ReturnType<typeof sdkClient>> | undefined;
    try {
      assert.ok(await eventually(async () => (await streams()) >= base + 1, 10_000), "first GET stream open");
      b = await sdkClient();
      assert.ok(await eventually(async () => (await streams()) >= base + 2, 10_000), "second GET stream open");
      const r = await rawInit();
      assert.equal(r.status, 429, r.body);
      assert.ok(Number(r.headers["retry-after"]) >= 1);
      assert.match(r.body, /maxSessionsPerClient/);
      assert.ok(metric(await scrape(s.metricsPort), "attestable_mcp_share_refusals_total", 'resource="session",scope="client"') >= 1);
      // Both sessions live on.
      assert.ok((await a.client.listTools()).tools.length > 0);
      assert.ok((await b.client.listTools()).tools.length > 0);
    } finally {
      await a.close();
      await b?.close();
    }
  });
});

describe("/healthz on a broken stdio command", { timeout: 60_000 }, () => {
  let s: SpawnedServe;
  before(async () => {
    s = await spawnServe(`upstream:\n  command: ["${process.execPath}", "/nonexistent-mcp-server.js"]\n`);
  });
  after(() => s?.stop());

  it("answers 503 naming the reason: the command is executable but its process exits at once", async () => {
    const r = await fetchVia(pinnedAgent(s.certPem, { keepAlive: false }), s.port, "/healthz");
    assert.equal(r.status, 503, r.body);
    assert.match(r.body, /MCP server process exited at once \(code 1\)/);
  });
});
