/**
 * Who may call, way (a): the MCP server behind `serve` (auth.mode none) is its own OAuth resource
 * server. The v2 SDK client's OAuth provider discovers it through `serve`, gets a token from a real
 * authorization server on loopback (oauth2-mock-server) and calls a tool; `serve` passes the
 * metadata, the challenge and `Authorization` through. The fetch is the one docs/library.md shows:
 * attested for the MCP server's origin, plain for the authorization server's.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { ClientCredentialsProvider, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { OAuth2Server } from "oauth2-mock-server";
import { attestedFetch, ConnectorError, rejectionOf, type AttestedFetch } from "../../proxy/client/connector.js";
import { makeClient } from "../support/mcp2/client.js";
import { startHttpServer, type HttpServer } from "../support/mcp2/spawn.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { policyFor, startDevServe, type Served } from "./harness.js";

describe("auth.mode none, an HTTP upstream that is its own OAuth resource server: the SDK's OAuth client through serve", { timeout: 60_000 }, () => {
  let as: OAuth2Server;
  let mcp: HttpServer;
  let front: Upstream;
  let served: Served;
  let attested: AttestedFetch;
  let resource = "";
  /** What the resource server saw: the subjects of the tokens it accepted, and how many requests it refused. */
  const accepted: string[] = [];
  let refused = 0;

  before(async () => {
    as = new OAuth2Server();
    await as.issuer.keys.generate("RS256");
    await as.start(0, "127.0.0.1");
    // Tokens for the resource the client asked for (RFC 8707), issued to the client that asked.
    as.service.on("beforeTokenSigning", (token: { payload: Record<string, unknown> }, req: { body?: Record<string, string> }) => {
      token.payload.aud = req.body?.resource;
      token.payload.sub = req.body?.client_id ?? "unknown";
    });
    const issuer = as.issuer.url!;
    const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
    mcp = await startHttpServer("dual");
    // The resource server in front of the MCP server: its metadata, its challenge, its token check.
    front = await startUpstream((req, res) => {
      const path = (req.url ?? "/").split("?", 1)[0]!;
      if (path.startsWith("/.well-known/oauth-protected-resource")) {
        req.resume();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ resource, authorization_servers: [issuer] }));
        return;
      }
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
      const verified = token ? jwtVerify(token, jwks, { issuer, audience: resource }).then((r) => String(r.payload.sub)) : Promise.reject(new Error("no token"));
      verified.then(
        (sub) => {
          accepted.push(sub);
          const up = http.request({ host: "127.0.0.1", port: mcp.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          });
          up.on("error", () => res.destroy());
          req.pipe(up);
        },
        () => {
          refused++;
          req.resume();
          res.writeHead(401, { "content-type": "application/json", "www-authenticate": `Bearer resource_metadata="${new URL("/.well-known/oauth-protected-resource/mcp", resource).href}"` });
          res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32001, message: "unauthorized" } }));
        },
      );
    });
    served = await startDevServe(`upstream: { url: "http://127.0.0.1:${front.port}" }\n`);
    resource = `${served.base}/mcp`;
    attested = attestedFetch(await policyFor(served));
  });
  after(async () => {
    await attested?.close();
    await served?.close();
    await front?.close();
    await mcp?.stop();
    await as?.stop();
  });

  const provider = (): ClientCredentialsProvider => new ClientCredentialsProvider({ clientId: "agent-7", clientSecret: "not-checked-by-the-mock", expectedIssuer: as.issuer.url! });

  it("attested for the MCP server's origin, plain for the authorization server's: the client gets a token and calls a tool", async () => {
    const origin = new URL(resource).origin;
    const fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
      new URL(input instanceof Request ? input.url : input).origin === origin ? attested(input, init) : globalThis.fetch(input, init);
    const { client } = makeClient({ mode: "auto" });
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch, authProvider: provider() }), { timeout: 20_000 });
      const r = (await client.callTool({ name: "echo", arguments: { message: "as-agent-7" } })) as { content: Array<{ text?: string }> };
      assert.match(r.content[0]?.text ?? "", /as-agent-7/);
    } finally {
      await client.close().catch(() => {});
    }
    assert.ok(refused >= 1, "the first request went without a token and was challenged");
    assert.ok(accepted.length > 0 && accepted.every((s) => s === "agent-7"), JSON.stringify(accepted));
  });

  it("the attested fetch alone refuses the authorization server (plain http), so nothing is authorized", async () => {
    const before = accepted.length;
    const { client } = makeClient({ mode: "auto" });
    try {
      const e = await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch: attested, authProvider: provider() }), { timeout: 20_000 }).catch((x: unknown) => x);
      // The MCP server's attestation passed; the token request to the http: authorization server is what the fetch refused.
      assert.equal(rejectionOf(e), null);
      assert.ok(e instanceof ConnectorError && e.code === "INSECURE_URL", `INSECURE_URL, got ${String(e)}`);
    } finally {
      await client.close().catch(() => {});
    }
    assert.equal(accepted.length, before);
  });
});
