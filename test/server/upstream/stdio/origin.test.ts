/**
 * Origin and Host for the stdio endpoints: the pure check (allowlisted origins in any spelling,
 * `null` and look-alikes refused, no Origin fine; Host by the listen address's names or
 * upstream.publicHosts, wildcard listen unchecked), the config keys that feed it, and the relay
 * answering 403 before a session or a child exists.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../../../../proxy/server/config.js";
import { isWildcard, normalOrigin, requestGuard } from "../../../../proxy/server/upstream/stdio/origin.js";
import { childPids, EVERYTHING, INIT, MCP_HEADERS, scoped, startProxy } from "./harness.js";

describe("requestGuard", () => {
  const loopback = requestGuard({ allowedOrigins: ["https://app.example", "vscode-webview://abc"], publicHosts: null, listenHost: "127.0.0.1" });

  it("Origin: absent passes; listed passes in any spelling of the same origin; anything else is refused naming the header", () => {
    assert.equal(loopback.check({ host: "127.0.0.1:8443" }), null);
    for (const origin of ["https://app.example", "HTTPS://APP.example:443", "vscode-webview://ABC"]) assert.equal(loopback.check({ host: "127.0.0.1", origin }), null, origin);
    for (const origin of [
      "null",
      "",
      "https://evil.example",
      "http://app.example",
      "https://app.example:8443",
      "https://app.example.evil.example",
      "https://app.example/path",
      "https://user@app.example",
      "https://app.example, https://evil.example",
    ]) {
      assert.match(loopback.check({ host: "127.0.0.1", origin }) ?? "", /^Forbidden: Origin .* is not allowed \(upstream\.allowedOrigins\)$/, JSON.stringify(origin));
    }
    const none = requestGuard({ allowedOrigins: [], publicHosts: null, listenHost: "127.0.0.1" });
    assert.match(none.check({ host: "localhost", origin: "http://localhost:6274" }) ?? "", /Origin/, "no Origin is allowed by default, loopback ones neither");
  });

  it("Host on a loopback listen address: the loopback names, with or without a port; nothing else", () => {
    assert.equal(loopback.hostChecked, true);
    for (const host of ["127.0.0.1", "127.0.0.1:8443", "localhost:1", "LOCALHOST.", "[::1]:8443", "[::ffff:127.0.0.1]", "127.9.9.9"]) assert.equal(loopback.check({ host }), null, host);
    for (const host of ["evil.example", "evil.example:8443", "127.0.0.1.nip.io", "10.0.0.1", "", "a@127.0.0.1", "127.0.0.1/x", "[::2]:1", "localhost:8443:1"]) {
      assert.match(loopback.check({ host }) ?? "", /^Forbidden: Host .* \(upstream\.publicHosts\)$/, JSON.stringify(host));
    }
    assert.equal(loopback.check({}), null, "no Host (HTTP/1.0): not a browser");
  });

  it("Host with publicHosts: those names only; with a wildcard listen address and none: not checked", () => {
    const listed = requestGuard({ allowedOrigins: [], publicHosts: ["mcp.example.com", "[2001:db8::1]", "10.1.2.3"], listenHost: "0.0.0.0" });
    assert.equal(listed.hostChecked, true);
    for (const host of ["mcp.example.com", "MCP.example.com.:443", "[2001:db8::1]:8443", "10.1.2.3"]) assert.equal(listed.check({ host }), null, host);
    for (const host of ["127.0.0.1", "localhost", "other.example.com"]) assert.notEqual(listed.check({ host }), null, host);

    for (const listenHost of ["0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0"]) {
      assert.equal(isWildcard(listenHost), true, listenHost);
      const open = requestGuard({ allowedOrigins: [], publicHosts: null, listenHost });
      assert.equal(open.hostChecked, false);
      assert.equal(open.check({ host: "anything.example" }), null);
      assert.notEqual(open.check({ host: "anything.example", origin: "https://evil.example" }), null, "Origin is checked all the same");
    }
    const own = requestGuard({ allowedOrigins: [], publicHosts: null, listenHost: "192.0.2.7" });
    assert.equal(own.check({ host: "192.0.2.7:8443" }), null);
    assert.notEqual(own.check({ host: "evil.example" }), null);
  });

  it("normalOrigin: one spelling, or null for what is not an origin", () => {
    assert.equal(normalOrigin("HTTPS://A.example:443"), "https://a.example");
    assert.equal(normalOrigin("http://a.example:8080"), "http://a.example:8080");
    for (const v of ["null", "a.example", "https://a.example/", "https://a.example?x", "https://u:p@a.example", "*"]) assert.equal(normalOrigin(v), null, v);
  });
});

describe("config keys upstream.allowedOrigins, upstream.publicHosts, upstream.maxMessageSize", () => {
  const base: [string, string][] = [
    ["attestation.provider", "dev"],
    ["upstream.command", "[node, server.js]"],
  ];
  it("defaults, values, and refusals that name the key", async () => {
    const d = (await loadConfig({ sets: base })).upstream;
    assert.equal(d.kind, "stdio");
    if (d.kind !== "stdio") return;
    assert.equal(d.maxMessageSize, 64 * 1024 * 1024);
    assert.deepEqual(d.allowedOrigins, []);
    assert.equal(d.publicHosts, null);
    const c = (
      await loadConfig({
        sets: [...base, ["upstream.maxMessageSize", "1MiB"], ["upstream.allowedOrigins", "[https://app.example]"], ["upstream.publicHosts", "[mcp.example.com, '[::1]']"]],
      })
    ).upstream;
    assert.ok(c.kind === "stdio");
    assert.equal(c.maxMessageSize, 1024 * 1024);
    assert.deepEqual(c.allowedOrigins, ["https://app.example"]);
    assert.deepEqual(c.publicHosts, ["mcp.example.com", "[::1]"]);
    const refused: [string, string, RegExp][] = [
      ["upstream.allowedOrigins", "[https://app.example/path]", /is not an origin/],
      ["upstream.allowedOrigins", "[null]", /is not an origin/],
      ["upstream.allowedOrigins", "https://app.example", /expected a list/],
      ["upstream.publicHosts", "[mcp.example.com:8443]", /is not a host name or address, no port/],
      ["upstream.maxMessageSize", "lots", /./],
    ];
    for (const [key, value, why] of refused) {
      await assert.rejects(loadConfig({ sets: [...base, [key, value]] }), (e: unknown) => e instanceof ConfigError && e.message.includes(key) && why.test(e.message), `${key}=${value}`);
    }
    await assert.rejects(
      loadConfig({
        sets: [
          ["attestation.provider", "dev"],
          ["upstream.url", "http://127.0.0.1:3000"],
          ["upstream.allowedOrigins", "[https://a.example]"],
        ],
      }),
      (e: unknown) => e instanceof ConfigError && /upstream\.allowedOrigins.*only applies to upstream\.command/.test(e.message),
    );
  });
});

describe("the relay with a guard", () => {
  it("a refused request gets 403 with a JSON-RPC error before any child is spawned; an allowed one starts its session", () =>
    scoped(async (defer) => {
      const p = await startProxy(defer, { origins: { allowedOrigins: ["https://app.example"], publicHosts: null, listenHost: "127.0.0.1" } });
      const post = (headers: Record<string, string>) =>
        fetch(`${p.base}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, ...headers }, body: JSON.stringify(INIT), signal: AbortSignal.timeout(10_000) });
      for (const origin of ["https://evil.example", "null"]) {
        const r = await post({ origin });
        assert.equal(r.status, 403);
        const body = (await r.json()) as { error: { message: string }; id: unknown };
        assert.match(body.error.message, /Origin/);
        assert.equal(body.id, null);
      }
      assert.equal(p.up.sessions(), 0);
      assert.deepEqual(childPids(EVERYTHING), []);
      const ok = await post({ origin: "https://app.example" });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      assert.equal(p.up.sessions(), 1);
    }));
});
