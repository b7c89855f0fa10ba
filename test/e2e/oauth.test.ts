/**
 * `auth.mode: oauth` end to end: `serve` spawned with a real authorization server on loopback
 * (oauth2-mock-server, its client_credentials grant; the token's audience is the `resource` the
 * client asks for, RFC 8707). The v2 SDK client, with its ClientCredentialsProvider, is refused,
 * reads the protected-resource metadata, obtains a token and calls a tool, all over RA-TLS through
 * attestedFetch. Refused callers reach nothing; a legacy session belongs to its subject.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ClientCredentialsProvider, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { OAuth2Server } from "oauth2-mock-server";
import { attestedFetch, type AttestedFetch, type ConnectionVerdict, type ConnectorOptions } from "../../proxy/client/connector.js";
import { buildPolicy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { makeClient } from "../support/mcp2/client.js";
import { SERVER_JS } from "../support/mcp2/spawn.js";
import { devDir, fetchVia, metric, pinnedAgent, rawExchange, scrape, spawnServe, type SpawnedServe } from "../support/robust.js";
import { freePort, startUpstream, type Upstream } from "../support/upstream.js";
import { tempDir } from "../support/wait.js";

const dir = tempDir("amcp-oauth-");
const SCOPE = "mcp:tools";
const JSON_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** The mock AS issues a client_credentials token to the client as its subject, for the resource it asked for. */
async function startAs(): Promise<{ as: OAuth2Server; issuer: string; issued: () => number }> {
  const as = new OAuth2Server();
  await as.issuer.keys.generate("ES256");
  let issued = 0;
  as.service.on("beforeTokenSigning", (token: { payload: Record<string, unknown> }, req: IncomingMessage & { body: Record<string, string> }) => {
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? "");
    const clientId = basic ? decodeURIComponent(Buffer.from(basic[1]!, "base64").toString("utf8").split(":")[0]!) : req.body.client_id;
    Object.assign(token.payload, { sub: clientId, aud: req.body.resource });
    issued++;
  });
  await as.start(0, "127.0.0.1");
  return { as, issuer: as.issuer.url!, issued: () => issued };
}

/** serve on a port chosen first, so that its audience (its own URL) is in its config. */
async function spawnOAuthServe(issuer: string, upstreamYaml: string): Promise<{ s: SpawnedServe; audience: string }> {
  const port = await freePort();
  const audience = `https://127.0.0.1:${port}/mcp`;
  const s = await spawnServe(`auth: { mode: oauth, oauth: { issuer: "${issuer}", audience: "${audience}", scopes: ["${SCOPE}"] } }\n${upstreamYaml}`, {
    env: { ATTESTABLE_MCP_LISTEN: `127.0.0.1:${port}`, ATTESTABLE_MCP_LOG_LEVEL: "info" },
  });
  return { s, audience };
}

/** attestedFetch for `s` under a policy pinning its dev enclave, with `more` of the connector's options. */
async function trust(s: SpawnedServe, more: Omit<ConnectorOptions, "policy"> = {}): Promise<AttestedFetch> {
  const rootPath = join(devDir(), "root.pem");
  const verdict = await verifyRaTlsCertificate(s.certDer, { trustRoots: [readFileSync(rootPath, "utf8")] });
  assert.ok(verdict.ok && verdict.quote?.teeType === "SGX");
  const doc = { trustRoots: [rootPath], measurements: [{ mrenclave: verdict.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" };
  writeFileSync(join(dir, `policy-${s.port}.json`), JSON.stringify(doc));
  const policy = await buildPolicy(doc, "(test policy)", dir, (p) => readFile(p, "utf8"));
  return attestedFetch({ policy, ...more });
}

describe("serve with auth.mode: oauth, a stdio upstream, the v2 SDK client", { timeout: 120_000 }, () => {
  let as: Awaited<ReturnType<typeof startAs>>;
  let s: SpawnedServe;
  let audience: string;
  let attested: AttestedFetch;
  const tokens: string[] = [];
  before(async () => {
    as = await startAs();
    ({ s, audience } = await spawnOAuthServe(as.issuer, `upstream:\n  command: ${JSON.stringify([process.execPath, SERVER_JS, "--stdio", "--era", "dual"])}\n`));
    attested = await trust(s);
  });
  after(async () => {
    await attested?.close().catch(() => {});
    await s?.stop();
    await as?.as.stop();
  });

  it("the SDK client is refused, finds the authorization server in the metadata, obtains a token and calls a tool over RA-TLS", async () => {
    // The attested connection for serve; the authorization server is another party, reached as usual.
    const verdicts: ConnectionVerdict[] = [];
    const routed = await trust(s, { attestOnly: audience, onVerdict: (v) => verdicts.push(v) });
    const provider = new ClientCredentialsProvider({ clientId: "svc-ci", clientSecret: "s3cret", scope: SCOPE, expectedIssuer: as.issuer });
    const { client } = makeClient({ mode: "auto" });
    const transport = new StreamableHTTPClientTransport(new URL(audience), { fetch: routed, authProvider: provider });
    await client.connect(transport, { timeout: 20_000 });
    try {
      const r = (await client.callTool({ name: "echo", arguments: { message: "through-oauth" } })) as { content: Array<{ text?: string }> };
      assert.match(r.content[0]?.text ?? "", /through-oauth/);
    } finally {
      await client.close();
      await routed.close();
    }
    assert.ok(as.issued() >= 1, "no token was issued");
    assert.ok(verdicts.length >= 1 && verdicts.every((v) => v.ok), "serve's connections were attested");
    const t = provider.tokens()?.access_token;
    assert.ok(t);
    tokens.push(t);
  });

  it("a legacy session opened by one subject is refused (404) to another", async () => {
    const a = pinnedAgent(s.certPem);
    const mint = (sub: string): Promise<string> => as.as.issuer.buildToken({ scopesOrTransform: (_h, p) => Object.assign(p, { sub, aud: audience, scope: SCOPE }) });
    const [alice, bob] = [await mint("alice"), await mint("bob")];
    tokens.push(alice, bob);
    const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } };
    const opened = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth(alice) }, body: JSON.stringify(initialize) });
    assert.equal(opened.status, 200, opened.body);
    const sid = opened.headers["mcp-session-id"] as string;
    const next = (token: string) =>
      fetchVia(a, s.port, "/mcp", {
        method: "POST",
        headers: { ...JSON_HEADERS, ...auth(token), "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
      });
    assert.equal((await next(bob)).status, 404);
    assert.equal((await next(alice)).status, 202);
    a.destroy();
  });

  it("no token appears in serve's output; subjects do", async () => {
    await s.stop();
    const out = s.output();
    for (const t of tokens) assert.ok(!out.includes(t), "a token in the output");
    assert.match(out, /"subject":"svc-ci"/);
    assert.match(out, /"subject":"alice"/);
  });
});

describe("serve with auth.mode: oauth, an HTTP upstream", { timeout: 60_000 }, () => {
  let as: Awaited<ReturnType<typeof startAs>>;
  let s: SpawnedServe;
  let audience: string;
  let up: Upstream;
  const seen: Array<Record<string, unknown>> = [];
  before(async () => {
    as = await startAs();
    up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      seen.push({ ...req.headers });
      req.resume();
      req.on("end", () => res.end('{"ok":true}'));
    });
    ({ s, audience } = await spawnOAuthServe(as.issuer, `upstream: { url: "http://127.0.0.1:${up.port}" }\n`));
  });
  after(async () => {
    await s?.stop();
    await up?.close();
    await as?.as.stop();
  });

  it("the protected-resource metadata is served, open, at both paths", async () => {
    const a = pinnedAgent(s.certPem);
    for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
      const r = await fetchVia(a, s.port, path);
      assert.equal(r.status, 200, path);
      assert.deepEqual(JSON.parse(r.body), { resource: audience, authorization_servers: [as.issuer], scopes_supported: [SCOPE], bearer_methods_supported: ["header"] });
    }
    a.destroy();
    assert.equal(seen.length, 0);
  });

  it("no token, a bad one, an upgrade without one: 401 with resource_metadata; nothing reaches the upstream; counted", async () => {
    const a = pinnedAgent(s.certPem);
    const challenge = `Bearer resource_metadata="${new URL("/.well-known/oauth-protected-resource", audience).href}", scope="${SCOPE}"`;
    const none = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: JSON_HEADERS, body: "{}" });
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], challenge);
    const expired = await as.as.issuer.buildToken({ expiresIn: -600, scopesOrTransform: (_h, p) => Object.assign(p, { sub: "carol", aud: audience, scope: SCOPE }) });
    const bad = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth(expired) }, body: "{}" });
    assert.equal(bad.status, 401);
    assert.match(String(bad.headers["www-authenticate"]), /^Bearer error="invalid_token", error_description="the token has expired", resource_metadata=/);
    const upgrade = await rawExchange(
      s,
      "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      (got) => got.includes("\r\n\r\n{"),
    );
    assert.match(upgrade, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.ok(upgrade.includes(`WWW-Authenticate: ${challenge}\r\n`), upgrade);
    assert.equal(seen.length, 0);
    assert.equal(metric(await scrape(s.metricsPort), "attestable_mcp_auth_failures_total", 'reason="missing"'), 2);
    a.destroy();
  });

  it("a good token arrives as X-Authenticated-Subject, without the token or a forged subject", async () => {
    const a = pinnedAgent(s.certPem);
    const t = await as.as.issuer.buildToken({ scopesOrTransform: (_h, p) => Object.assign(p, { sub: "dave", aud: audience, scope: SCOPE }) });
    const ok = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth(t), "x-authenticated-subject": "root" }, body: "{}" });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!["x-authenticated-subject"], "dave");
    assert.equal(seen[0]!.authorization, undefined);
    a.destroy();
  });
});
