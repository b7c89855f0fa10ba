/**
 * The shared value parsers and the one loopback rule, and that every place which asks "is this
 * loopback?" (policy, serve config, PCCS client, bridge) gives the same answer.
 */
import assert from "node:assert/strict";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { BridgeError, ConfigError, InputError, PolicyError } from "../../proxy/core/errors.js";
import { expandHome, isLoopback, MAX_TIMER_MS, unbracket, valueParsers } from "../../proxy/core/schema.js";
import { parseListen } from "../../proxy/client/bridge/stdio.js";
import { normalisePccsUrl } from "../../proxy/collateral/pccs.js";
import { buildPolicy } from "../../proxy/evidence/policy.js";
import { loadConfig } from "../../proxy/server/config.js";

class Refused extends Error {
  constructor(
    readonly key: string,
    readonly source: string,
    readonly reason: string,
  ) {
    super(`${source}: ${key}: ${reason}`);
  }
}

const p = valueParsers((key, source, reason) => {
  throw new Refused(key, source, reason);
});

function refuses(f: () => unknown, key: string, reason: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof Refused, String(e));
    assert.equal(e.key, key);
    assert.equal(e.source, "src");
    assert.match(e.reason, reason);
    return true;
  });
}

describe("isLoopback", () => {
  it("loopback: 127.0.0.0/8, ::1 in every spelling, IPv4-mapped 127/8, localhost", () => {
    for (const h of [
      "127.0.0.1",
      "127.5.6.7",
      "127.255.255.255",
      "::1",
      "[::1]",
      "localhost",
      "LOCALHOST",
      "0:0:0:0:0:0:0:1",
      "[0:0:0:0:0:0:0:1]",
      "::ffff:127.0.0.1",
      "[::ffff:127.9.8.7]",
      "::FFFF:7f00:1",
    ]) {
      assert.equal(isLoopback(h), true, h);
    }
  });

  it("not loopback: names that merely start like an address, other addresses, the wildcard", () => {
    for (const h of [
      "127.attacker.example",
      "127.0.0.1.nip.io",
      "localhost.attacker.example",
      "10.0.0.1",
      "0.0.0.0",
      "::",
      "[::]",
      "::2",
      "::ffff:10.0.0.1",
      "128.0.0.1",
      "example.com",
      "",
      "fe80::1%lo",
      "127.1",
    ]) {
      assert.equal(isLoopback(h), false, h);
    }
  });

  it("every user of the rule refuses http://127.attacker.example/", async () => {
    // The policy once let it through (a prefix test on the host name).
    await assert.rejects(
      buildPolicy({ measurements: "any", collateral: { pccsUrl: "http://127.attacker.example/" } }, "p.yaml", "/", () => Promise.reject(new Error("no roots"))),
      (e: unknown) => {
        assert.ok(e instanceof PolicyError, String(e));
        assert.equal(e.key, "collateral.pccsUrl");
        assert.match(e.reason, /http: only on loopback/);
        return true;
      },
    );
    assert.throws(
      () => normalisePccsUrl("http://127.attacker.example/"),
      (e: unknown) => e instanceof InputError && e.code === "PCCS_URL_INSECURE",
    );
    assert.throws(
      () => parseListen("127.attacker.example:8080"),
      (e: unknown) => e instanceof BridgeError && e.code === "LISTEN_NOT_LOOPBACK",
    );
    await assert.rejects(
      loadConfig({
        sets: [
          ["attestation.provider", "dev"],
          ["upstream.url", "http://127.attacker.example:3001"],
        ],
      }),
      (e: unknown) => e instanceof ConfigError && e.key === "upstream.url" && /loopback/.test(e.reason),
    );
  });

  it("and every user accepts the loopback spellings", async () => {
    for (const url of ["http://127.0.0.1:8081/", "http://127.8.0.1/", "http://[::1]:8081/", "http://localhost:8081/", "https://pccs.example/"]) {
      const pol = await buildPolicy({ measurements: "any", collateral: { pccsUrl: url } }, "p.yaml", "/", () => Promise.reject(new Error("no roots")));
      assert.equal(pol.collateral.pccsUrl, url);
      assert.equal(normalisePccsUrl(url), url);
    }
    assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(parseListen("127.0.0.2:8080"), { host: "127.0.0.2", port: 8080 });
  });
});

describe("valueParsers", () => {
  it("duration: units ms..d, positive, bounded by a Node timer unless told otherwise", () => {
    assert.equal(p.duration("k", "500ms", "src"), 500);
    assert.equal(p.duration("k", " 1.5s ", "src"), 1500);
    assert.equal(p.duration("k", "5m", "src"), 300_000);
    assert.equal(p.duration("k", "24h", "src"), 86_400_000);
    assert.equal(p.duration("k", "7d", "src"), 7 * 86_400_000);
    assert.equal(p.duration("k", "30d", "src", 100 * 365 * 86_400_000), 30 * 86_400_000);
    refuses(() => p.duration("k", "30d", "src"), "k", /out of range/);
    assert.ok(30 * 86_400_000 > MAX_TIMER_MS);
    refuses(() => p.duration("k", "0s", "src"), "k", /out of range/);
    refuses(() => p.duration("k", 30, "src"), "k", /expected a duration/);
    refuses(() => p.duration("k", "30 seconds", "src"), "k", /expected a duration/);
  });

  it("size: a positive integer or B / KiB / MiB / GiB", () => {
    assert.equal(p.size("k", 4096, "src"), 4096);
    assert.equal(p.size("k", "16KiB", "src"), 16384);
    assert.equal(p.size("k", "4 MiB", "src"), 4 * 1024 ** 2);
    assert.equal(p.size("k", "1GiB", "src"), 1024 ** 3);
    refuses(() => p.size("k", 0, "src"), "k", /expected a size/);
    refuses(() => p.size("k", 1.5, "src"), "k", /expected a size/);
    refuses(() => p.size("k", "4MB", "src"), "k", /expected a size/);
    refuses(() => p.size("k", "0KiB", "src"), "k", /positive/);
  });

  it("int, str, oneOf, bool", () => {
    assert.equal(p.int("k", 3, "src", 1, 3), 3);
    refuses(() => p.int("k", 4, "src", 1, 3), "k", /integer 1\.\.3, got 4/);
    refuses(() => p.int("k", 1.5, "src", 1, 3), "k", /integer/);
    refuses(() => p.int("k", "2", "src", 1, 3), "k", /integer/);
    assert.equal(p.str("k", "x", "src"), "x");
    refuses(() => p.str("k", "", "src"), "k", /non-empty string/);
    refuses(() => p.str("k", 1, "src"), "k", /non-empty string/);
    assert.equal(p.oneOf("k", "b", "src", ["a", "b"] as const), "b");
    refuses(() => p.oneOf("k", "c", "src", ["a", "b"] as const), "k", /one of a, b, got "c"/);
    assert.equal(p.bool("k", false, "src"), false);
    refuses(() => p.bool("k", "false", "src"), "k", /true or false/);
  });

  it("hostPort: HOST:PORT, IPv6 in brackets, the port in range", () => {
    assert.deepEqual(p.hostPort("k", "127.0.0.1:8443", "src"), { host: "127.0.0.1", port: 8443 });
    assert.deepEqual(p.hostPort("k", "[::1]:0", "src"), { host: "::1", port: 0 });
    assert.deepEqual(p.hostPort("k", "proxy.internal:443", "src"), { host: "proxy.internal", port: 443 });
    refuses(() => p.hostPort("k", "8443", "src"), "k", /HOST:PORT/);
    refuses(() => p.hostPort("k", "::1:8443", "src"), "k", /HOST:PORT/);
    refuses(() => p.hostPort("k", "h:65536", "src"), "k", /out of range/);
  });

  it("url and serviceUrl: a URL; a service is https:, or http: on loopback only", () => {
    assert.equal(p.url("k", "http://127.0.0.1:1/", "src").port, "1");
    refuses(() => p.url("k", "not a url", "src", "http://HOST:PORT"), "k", /"not a url" is not a URL \(http:\/\/HOST:PORT\)/);
    assert.equal(p.serviceUrl("k", "https://pccs.example:8081/", "src").hostname, "pccs.example");
    assert.equal(p.serviceUrl("k", "http://[::1]:8081/", "src").hostname, "[::1]");
    refuses(() => p.serviceUrl("k", "http://pccs.example/", "src"), "k", /must be https: \(http: only on loopback\), got http:/);
    refuses(() => p.serviceUrl("k", "http://127.attacker.example/", "src"), "k", /http: only on loopback/);
    refuses(() => p.serviceUrl("k", "ftp://127.0.0.1/", "src"), "k", /got ftp:/);
  });

  it("expandHome and unbracket", () => {
    assert.equal(expandHome("~"), homedir());
    assert.equal(expandHome("~/cache"), join(homedir(), "cache"));
    assert.equal(expandHome("~other/x"), "~other/x");
    assert.equal(expandHome("/abs"), "/abs");
    assert.equal(unbracket("[::1]"), "::1");
    assert.equal(unbracket("::1"), "::1");
    assert.equal(unbracket("example.com"), "example.com");
  });
});
