/**
 * `auth.mode: oauth` token checks against a real authorization server on loopback
 * (oauth2-mock-server: OpenID discovery, its JWKS, its signing keys), behind the guard on a plain
 * loopback HTTP server that counts what gets through. Each bad token is refused with its status and
 * challenge; the JWKS is fetched as its Cache-Control says and refetched for an unknown key at most
 * once a minute (a moved clock, counted fetches); no keys at all is a 503 and a metric.
 */
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { exportSPKI, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import { OAuth2Server } from "oauth2-mock-server";
import { pino } from "pino";
import type { OAuthConfig } from "../../../proxy/server/config-auth.js";
import { createKeySource, maxAgeMs, metadataUrls, type KeySourceOptions } from "../../../proxy/server/auth/jwks.js";
import { createOAuthGuard } from "../../../proxy/server/auth/oauth.js";
import { createResourceMetadata } from "../../../proxy/server/auth/resource-metadata.js";
import { createMetrics } from "../../../proxy/server/metrics.js";
import { freePort, request, startUpstream, type Upstream } from "../../support/upstream.js";

const AUDIENCE = "https://mcp.test:8443/mcp";
const SCOPE = "mcp:tools";

interface Front {
  port: number;
  /** Requests the guard let through. */
  passed: string[];
  logs: string[];
  failures(reason: string): Promise<number>;
  close(): Promise<void>;
}

/** A loopback server whose every request goes through the oauth guard first. */
async function front(cfg: OAuthConfig, source: KeySourceOptions): Promise<Front> {
  const logs: string[] = [];
  const log = pino({ level: "trace" }, { write: (s: string) => void logs.push(s) });
  const metrics = createMetrics();
  const guard = createOAuthGuard(cfg, log, (reason) => metrics.authFailures.inc({ reason }), createKeySource(source));
  const passed: string[] = [];
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) =>
    guard.admit(req, res, () => {
      passed.push(String(req.headers["x-seen"] ?? ""));
      res.end(JSON.stringify({ auth: req.headers.authorization ?? null }));
    }),
  );
  return {
    port: up.port,
    passed,
    logs,
    failures: async (reason) => (await metrics.authFailures.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0,
    close: () => up.close(),
  };
}

const call = (port: number, token?: string) => request(port, { path: "/mcp", method: "POST", headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, "{}");

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");

describe("oauth: access tokens against oauth2-mock-server", { timeout: 30_000 }, () => {
  const as = new OAuth2Server();
  let issuer: string;
  let cfg: OAuthConfig;
  let f: Front;
  let servedKey: JWK;
  /** A token of the mock AS for AUDIENCE, subject alice, the required scope; `edit` changes it before signing. */
  const token = (edit: (payload: Record<string, unknown>, header: Record<string, unknown>) => void = () => {}, expiresIn?: number): Promise<string> =>
    as.issuer.buildToken({
      ...(expiresIn === undefined ? {} : { expiresIn }),
      scopesOrTransform: (header, payload) => {
        Object.assign(payload, { sub: "alice", aud: AUDIENCE, scope: `${SCOPE} other` });
        edit(payload, header);
      },
    });

  before(async () => {
    servedKey = await as.issuer.keys.generate("ES256");
    await as.start(0, "127.0.0.1");
    issuer = as.issuer.url!;
    cfg = { mode: "oauth", issuer, jwksUrl: null, audience: AUDIENCE, scopes: [SCOPE] };
    f = await front(cfg, { issuer, jwksUrl: null });
  });
  after(async () => {
    await f?.close();
    await as.stop();
  });

  it("a good token passes as its subject; the token does not go on", async () => {
    const r = await call(f.port, await token());
    assert.equal(r.status, 200, r.body.toString());
    assert.deepEqual(JSON.parse(r.body.toString()), { auth: null });
    assert.equal(f.passed.length, 1);
  });

  it("no token: 401 with resource_metadata and the scope, no error code", async () => {
    const r = await call(f.port);
    assert.equal(r.status, 401);
    assert.equal(r.headers["www-authenticate"], `Bearer resource_metadata="https://mcp.test:8443/.well-known/oauth-protected-resource", scope="${SCOPE}"`);
    const basic = await request(f.port, { path: "/mcp", headers: { authorization: "Basic YTpi" } });
    assert.equal(basic.status, 401);
    assert.doesNotMatch(String(basic.headers["www-authenticate"]), /error=/);
  });

  it("expired, wrong audience, wrong issuer, unknown key, alg none, HS256 keyed with the public key, no subject: each 401 invalid_token", async () => {
    const rogue = await generateKeyPair("ES256");
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer, aud: AUDIENCE, sub: "mallory", scope: SCOPE, iat: now, exp: now + 600 };
    const publicPem = await exportSPKI((await importJWK({ kty: servedKey.kty, crv: servedKey.crv, x: servedKey.x, y: servedKey.y }, "ES256")) as CryptoKey);
    const cases: Array<[string, string, RegExp]> = [
      ["expired", await token(() => {}, -3600), /expired/],
      ["wrong audience", await token((p) => (p.aud = "https://other.test/mcp")), /aud claim is not accepted/],
      ["wrong issuer", await token((p) => (p.iss = "https://evil.test")), /iss claim is not accepted/],
      ["unknown key", await new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "rogue" }).sign(rogue.privateKey), /signing key is not in the issuer's key set/],
      ["alg none", `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`, /algorithm is not allowed/],
      ["HS256 with the public key", await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: servedKey.kid }).sign(new TextEncoder().encode(publicPem)), /algorithm is not allowed/],
      ["no subject", await token((p) => delete p.sub), /sub claim is missing/],
      ["a subject with a space", await token((p) => (p.sub = "alice admin")), /subject is not 1 to 256 visible ASCII/],
      ["not a JWT", "abc.def", /not a signed JWT/],
    ];
    const before = f.passed.length;
    for (const [what, t, description] of cases) {
      const r = await call(f.port, t);
      assert.equal(r.status, 401, `${what}: ${r.body.toString()}`);
      const challenge = String(r.headers["www-authenticate"]);
      assert.match(challenge, /^Bearer error="invalid_token", error_description="[^"]+", resource_metadata="https:\/\/mcp\.test:8443\/\.well-known\/oauth-protected-resource"$/, what);
      assert.match(challenge, description, what);
    }
    assert.equal(f.passed.length, before, "a refused token reached the upstream");
    assert.equal(await f.failures("invalid"), cases.length);
    for (const [, t] of cases) assert.ok(!f.logs.some((l) => l.includes(t.split(".")[2] || t)), "a token in the log");
  });

  it("a token without a required scope: 403 insufficient_scope naming the scope; scp is read too", async () => {
    const r = await call(f.port, await token((p) => (p.scope = "other")));
    assert.equal(r.status, 403);
    assert.equal(r.headers["www-authenticate"], `Bearer error="insufficient_scope", scope="${SCOPE}", resource_metadata="https://mcp.test:8443/.well-known/oauth-protected-resource"`);
    assert.equal(await f.failures("insufficient_scope"), 1);
    const scp = await call(f.port, await token((p) => Object.assign(p, { scope: undefined, scp: [SCOPE] })));
    assert.equal(scp.status, 200, scp.body.toString());
  });

  it("the metadata document names the resource, the issuer and the scopes", async () => {
    const md = createResourceMetadata(cfg);
    for (const p of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) assert.ok(md.serves(p), p);
    assert.ok(!md.serves("/.well-known/oauth-protected-resource/other"));
    const up = await startUpstream((req, res) => md.handle(req, res));
    try {
      const r = await request(up.port, { path: "/.well-known/oauth-protected-resource" });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body.toString()), { resource: AUDIENCE, authorization_servers: [issuer], scopes_supported: [SCOPE], bearer_methods_supported: ["header"] });
      assert.equal((await request(up.port, { path: "/.well-known/oauth-protected-resource", method: "POST" })).status, 405);
    } finally {
      await up.close();
    }
  });
});

/** An authorization server stand-in: RFC 8414 metadata and a JWKS with chosen caching headers, both counted. */
async function standIn(keys: () => JWK[], cacheControl: string | null): Promise<Upstream & { jwksFetches: () => number; metadataFetches: () => number; down: (d: boolean) => void }> {
  let jwks = 0;
  let metadata = 0;
  let isDown = false;
  const up: Upstream = await startUpstream((req, res) => {
    if (isDown) {
      res.writeHead(503).end();
      return;
    }
    if (req.url === "/.well-known/oauth-authorization-server") {
      metadata++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ issuer: up.base, jwks_uri: `${up.base}/jwks` }));
    } else if (req.url === "/jwks") {
      jwks++;
      res.writeHead(200, { "content-type": "application/json", ...(cacheControl === null ? {} : { "cache-control": cacheControl }) });
      res.end(JSON.stringify({ keys: keys() }));
    } else res.writeHead(404).end();
  });
  return { ...up, jwksFetches: () => jwks, metadataFetches: () => metadata, down: (d) => void (isDown = d) };
}

describe("oauth: the JWKS cache", { timeout: 30_000 }, () => {
  const as = new OAuth2Server();
  let issuer: string;
  before(async () => {
    await as.issuer.keys.generate("ES256", { kid: "first" });
    await as.start(0, "127.0.0.1");
    issuer = as.issuer.url!;
  });
  after(() => as.stop());
  const publicKeys = (): JWK[] => as.issuer.keys.toJSON();
  /** A token of the mock AS, re-issued as if by the stand-in (same keys, the stand-in's issuer). */
  const tokenFor = (iss: string, kid?: string): Promise<string> =>
    as.issuer.buildToken({ ...(kid ? { kid } : {}), scopesOrTransform: (_h, p) => Object.assign(p, { iss, sub: "bob", aud: AUDIENCE }) });

  it("Cache-Control max-age is honoured (at least a minute); an unknown key refetches at most once a minute; a new key is picked up", async () => {
    const s = await standIn(publicKeys, "public, max-age=600");
    let clock = Date.now();
    const cfg: OAuthConfig = { mode: "oauth", issuer: s.base, jwksUrl: null, audience: AUDIENCE, scopes: [] };
    const f = await front(cfg, { issuer: s.base, jwksUrl: null, now: () => clock });
    try {
      assert.equal((await call(f.port, await tokenFor(s.base))).status, 200);
      assert.equal(s.metadataFetches(), 1);
      assert.equal(s.jwksFetches(), 1);
      clock += 500_000;
      assert.equal((await call(f.port, await tokenFor(s.base))).status, 200);
      assert.equal(s.jwksFetches(), 1, "fetched again within max-age");
      clock += 200_000;
      assert.equal((await call(f.port, await tokenFor(s.base))).status, 200);
      assert.equal(s.jwksFetches(), 2, "not fetched again past max-age");

      // A key the AS adds later: unknown until a refetch, which comes at most once a minute.
      await as.issuer.keys.generate("ES256", { kid: "second" });
      const rotated = await tokenFor(s.base, "second");
      for (let i = 0; i < 5; i++) assert.equal((await call(f.port, rotated)).status, 401);
      assert.equal(s.jwksFetches(), 2, "an unknown kid refetched within the minute");
      clock += 61_000;
      assert.equal((await call(f.port, rotated)).status, 200);
      assert.equal(s.jwksFetches(), 3);
      assert.equal(s.metadataFetches(), 1, "the metadata is read once");
    } finally {
      await f.close();
      await s.close();
    }
  });

  it("no-store still keeps the keys a minute; past expiry an unreachable JWKS keeps the old keys within the stale bound, then 503", async () => {
    const s = await standIn(publicKeys, "no-store");
    let clock = Date.now();
    const f = await front({ mode: "oauth", issuer: s.base, jwksUrl: `${s.base}/jwks`, audience: AUDIENCE, scopes: [] }, { issuer: s.base, jwksUrl: `${s.base}/jwks`, now: () => clock });
    try {
      assert.equal((await call(f.port, await tokenFor(s.base))).status, 200);
      clock += 30_000;
      assert.equal((await call(f.port, await tokenFor(s.base))).status, 200);
      assert.equal(s.jwksFetches(), 1);
      assert.equal(s.metadataFetches(), 0, "jwksUrl set: no discovery");
      s.down(true);
      clock += 31_000;
      assert.equal((await call(f.port, await tokenFor(s.base))).status, 200, "stale keys while the JWKS is down");
      clock += 3_600_000;
      const r = await call(f.port, await tokenFor(s.base));
      assert.equal(r.status, 503);
      assert.equal(await f.failures("keys_unavailable"), 1);
    } finally {
      await f.close();
      await s.close();
    }
  });

  it("an unreachable key source with nothing kept: 503 with Retry-After, a warn line naming it (no token), the metric; nothing passes", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    for (const source of [
      { issuer: closed, jwksUrl: null },
      { issuer, jwksUrl: `${closed}/jwks` },
    ]) {
      const f = await front({ mode: "oauth", ...source, audience: AUDIENCE, scopes: [] }, source);
      try {
        const t = await tokenFor(issuer);
        const r = await call(f.port, t);
        assert.equal(r.status, 503, r.body.toString());
        assert.equal(r.headers["retry-after"], "10");
        assert.equal(r.headers["www-authenticate"], undefined);
        assert.equal(f.passed.length, 0);
        assert.equal(await f.failures("keys_unavailable"), 1);
        const line = f.logs.find((l) => /keys are unavailable/.test(l));
        assert.ok(line, f.logs.join(""));
        assert.match(line, /"level":40/);
        assert.ok(line.includes(closed), line);
        assert.ok(!f.logs.some((l) => l.includes(t)), "the token in a log line");
      } finally {
        await f.close();
      }
    }
  });

  it("discovery: RFC 8414 path before OpenID's, and a metadata document for another issuer is refused", async () => {
    assert.deepEqual(metadataUrls("https://as.test/tenant/"), ["https://as.test/.well-known/oauth-authorization-server/tenant", "https://as.test/tenant/.well-known/openid-configuration"]);
    // The mock serves only OpenID discovery: the fallback finds its keys.
    const viaOidc = createKeySource({ issuer, jwksUrl: null });
    await viaOidc.current();
    assert.equal(viaOidc.jwksUri(), `${issuer}/jwks`);
    // The mock's metadata says its own issuer, not this one.
    const other = createKeySource({ issuer: `${issuer}/`, jwksUrl: null });
    await assert.rejects(other.current(), (e: Error & { code?: string }) => e.code === "AUTH_METADATA_INVALID" && /is not the configured/.test(e.message));
  });

  it("Cache-Control parsing", () => {
    assert.equal(maxAgeMs(null), null);
    assert.equal(maxAgeMs("public, max-age=120"), 120_000);
    assert.equal(maxAgeMs("max-age=5, no-cache"), 0);
    assert.equal(maxAgeMs("private"), null);
  });
});
