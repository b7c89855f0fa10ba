/**
 * Who may call, from the client's side (issue 18): which `Authorization` `bridge --listen` sends
 * to the remote (the --bearer-file token, replacing the local client's own, or the local client's
 * own when there is no file), and `attestedFetch` composed with the v2 SDK's `authProvider`
 * against `serve` with `auth.mode: bearer`. Real serve (in-process, dev evidence), real TLS, real
 * SDK clients.
 */
import assert from "node:assert/strict";
import { utimesSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SdkErrorCode, SdkHttpError, StreamableHTTPClientTransport, UnauthorizedError, type OAuthClientProvider } from "@modelcontextprotocol/client";
import { bearerFile, type BearerSource } from "../../proxy/client/bridge/bearer-file.js";
import { startHttpBridge, type HttpBridge } from "../../proxy/client/bridge/listen.js";
import { BridgeError } from "../../proxy/client/bridge/stdio.js";
import { bridge } from "../../proxy/cli/bridge.js";
import { attestedFetch, type AttestedFetch } from "../../proxy/client/connector.js";
import { newKey } from "../../proxy/cli/new-key.js";
import { makeClient } from "../support/mcp2/client.js";
import { SERVER_JS } from "../support/mcp2/spawn.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { tempDir, within } from "../support/wait.js";
import { policyFor, startDevServe, type Served } from "./harness.js";

const dir = tempDir("amcp-client-bearer-");

/** One plain HTTP request to the bridge; the status. */
function local(port: number, method: string, headers: Record<string, string | string[]>): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: "/mcp", method, headers }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end(method === "POST" ? "{}" : undefined);
    }),
    15_000,
    `${method} through the bridge`,
  );
}

describe("bridge --listen: the Authorization the remote receives", { timeout: 60_000 }, () => {
  let up: Upstream;
  let served: Served;
  /** Per request the upstream got: every Authorization value in its raw head. */
  const seen: string[][] = [];
  const token = "file-token-4f1c0a";
  before(async () => {
    up = await startUpstream((req, res) => {
      const values: string[] = [];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === "authorization") values.push(req.rawHeaders[i + 1]!);
      seen.push(values);
      req.resume();
      req.on("end", () => res.end('{"ok":true}'));
    });
    // auth.mode none: serve passes Authorization through to an HTTP upstream, so the upstream sees what the bridge sent.
    served = await startDevServe(`upstream: { url: "http://127.0.0.1:${up.port}" }\n`);
  });
  after(async () => {
    await served?.close();
    await up?.close();
  });

  const withBridge = async (bearer: BearerSource | undefined, body: (port: number) => Promise<void>): Promise<string[]> => {
    const lines: string[] = [];
    const b: HttpBridge = await startHttpBridge({
      remote: new URL(`${served.base}/mcp`),
      policy: await policyFor(served),
      log: (l) => lines.push(l),
      listen: { host: "127.0.0.1", port: 0 },
      bearer,
    });
    try {
      await body(b.address.port);
    } finally {
      await b.close();
    }
    return lines;
  };

  it("without --bearer-file, a local client's own Authorization passes through unchanged, and none is added", async () => {
    seen.length = 0;
    await withBridge(undefined, async (port) => {
      assert.equal(await local(port, "POST", { "content-type": "application/json", authorization: "Bearer the-local-clients-own" }), 200);
      assert.equal(await local(port, "GET", {}), 200);
    });
    assert.deepEqual(seen, [["Bearer the-local-clients-own"], []]);
  });

  it("with --bearer-file, every request carries the file's token, in place of the local client's own (never alongside it)", async () => {
    seen.length = 0;
    const lines = await withBridge(
      () => token,
      async (port) => {
        assert.equal(await local(port, "POST", { "content-type": "application/json", authorization: "Bearer the-local-clients-own" }), 200);
        assert.equal(await local(port, "GET", { Authorization: "Basic YTpi" }), 200);
        assert.equal(await local(port, "DELETE", {}), 200);
      },
    );
    assert.deepEqual(seen, [[`Bearer ${token}`], [`Bearer ${token}`], [`Bearer ${token}`]]);
    assert.ok(lines.length > 0);
    for (const l of lines) assert.ok(!l.includes(token), `the token in a bridge log line: ${l}`);
  });

  it("a renewed --bearer-file is sent from the next request on; a broken rewrite keeps the previous token and warns without it", async () => {
    seen.length = 0;
    const file = join(dir, "renewed.token");
    let mtime = Date.now() / 1000 - 100;
    // Each write gets a later mtime, as a renewal would, without waiting for the clock.
    const write = (text: string): void => {
      writeFileSync(file, text);
      utimesSync(file, (mtime += 10), mtime);
    };
    write("first-token-a1\n");
    const warnings: string[] = [];
    const source = bearerFile(file, (l) => warnings.push(l), 0);
    const lines = await withBridge(source, async (port) => {
      assert.equal(await local(port, "GET", {}), 200);
      write("second-token-b2\n");
      assert.equal(await local(port, "GET", {}), 200);
      write("not one token\n");
      assert.equal(await local(port, "GET", {}), 200);
      assert.equal(await local(port, "GET", {}), 200);
    });
    assert.deepEqual(seen, [["Bearer first-token-a1"], ["Bearer second-token-b2"], ["Bearer second-token-b2"], ["Bearer second-token-b2"]]);
    assert.equal(warnings.length, 1, "one warning for the one broken change");
    assert.match(warnings[0]!, /renewed\.token: expected one token \(printable, no spaces\); the previous token is still sent/);
    for (const l of [...warnings, ...lines]) assert.ok(!/token-[ab][12]|not one token/.test(l), `a token in a log line: ${l}`);
  });
});

describe("serve with auth.mode bearer: the v2 SDK client's authProvider over attestedFetch, and through bridge --listen", { timeout: 120_000 }, () => {
  const keysFile = join(dir, "keys.txt");
  let key: string;
  let served: Served;
  let af: AttestedFetch;
  let url: URL;
  before(async () => {
    key = newKey("dana", keysFile);
    served = await startDevServe(
      `auth: { mode: bearer, bearer: { keysFile: ${JSON.stringify(keysFile)} } }\nupstream: { command: ${JSON.stringify([process.execPath, SERVER_JS, "--stdio", "--era", "dual"])} }\n`,
    );
    af = attestedFetch(await policyFor(served));
    url = new URL(`${served.base}/mcp`);
  });
  after(async () => {
    await af?.close();
    await served?.close();
  });

  /** connect + tools/call echo with this transport; the echoed text. */
  const echo = async (transport: StreamableHTTPClientTransport, message: string): Promise<string> => {
    const { client } = makeClient({ mode: "auto" });
    try {
      await client.connect(transport, { timeout: 15_000 });
      const r = (await client.callTool({ name: "echo", arguments: { message } })) as { content: Array<{ text?: string }> };
      return r.content[0]?.text ?? "";
    } finally {
      await client.close().catch(() => {});
    }
  };

  it("{ fetch: attestedFetch(policy), authProvider: { token } }: the key reaches serve over the attested connection", async () => {
    assert.match(await echo(new StreamableHTTPClientTransport(url, { fetch: af, authProvider: { token: async () => key } }), "with-provider"), /with-provider/);
  });

  it("an OAuthClientProvider whose tokens() holds the key works the same way", async () => {
    const provider: OAuthClientProvider = {
      redirectUrl: undefined,
      clientMetadata: { redirect_uris: [], client_name: "test" },
      clientInformation: () => undefined,
      tokens: () => ({ access_token: key, token_type: "Bearer" }),
      saveTokens: () => {},
      redirectToAuthorization: () => {
        throw new Error("no interactive authorization in this test");
      },
      saveCodeVerifier: () => {},
      codeVerifier: () => "",
    };
    assert.match(await echo(new StreamableHTTPClientTransport(url, { fetch: af, authProvider: provider }), "oauth-shaped"), /oauth-shaped/);
  });

  it("without an authProvider the connect fails with 401; with a wrong key, UnauthorizedError", async () => {
    const bare = await echo(new StreamableHTTPClientTransport(url, { fetch: af }), "x").catch((e: unknown) => e);
    assert.ok(bare instanceof SdkHttpError, `SdkHttpError, got ${String(bare)}`);
    assert.equal(bare.code, SdkErrorCode.ClientHttpAuthentication);
    assert.equal(bare.status, 401);
    const wrong = await echo(new StreamableHTTPClientTransport(url, { fetch: af, authProvider: { token: async () => `${key}x` } }), "x").catch((e: unknown) => e);
    assert.ok(wrong instanceof UnauthorizedError, `UnauthorizedError, got ${String(wrong)}`);
  });

  it("bridge --listen without a file: the local client's own authProvider authenticates it at serve; without one, 401", async () => {
    const lines: string[] = [];
    const b = await startHttpBridge({ remote: url, policy: await policyFor(served), log: (l) => lines.push(l), listen: { host: "127.0.0.1", port: 0 } });
    const local = new URL(`http://127.0.0.1:${b.address.port}/mcp`);
    try {
      assert.match(await echo(new StreamableHTTPClientTransport(local, { authProvider: { token: async () => key } }), "own-auth"), /own-auth/);
      const none = await echo(new StreamableHTTPClientTransport(local, { authProvider: { token: async () => undefined } }), "x").catch((e: unknown) => e);
      assert.ok(none instanceof UnauthorizedError, `UnauthorizedError, got ${String(none)}`);
    } finally {
      await b.close();
    }
    for (const l of lines) assert.ok(!l.includes(key), `the key in a bridge log line: ${l}`);
  });
});

describe("bridge --bearer-file: a file that holds no usable token", () => {
  it("is a BEARER_FILE_INVALID start-up error naming the file, never echoing what it holds, before anything connects", async () => {
    const policy = join(dir, "any.yaml");
    writeFileSync(policy, "trustRoots: [intel]\nmeasurements: any\n");
    const twoWords = join(dir, "two-words.token");
    writeFileSync(twoWords, "secret-part-one secret-part-two\n");
    for (const file of [twoWords, join(dir, "absent.token")]) {
      // Port 9 on loopback: nothing listens, and nothing is asked before the file is read.
      const e = await bridge({ remote: "https://127.0.0.1:9/mcp", policy, listen: null, bearerFile: file }).catch((x: unknown) => x);
      assert.ok(e instanceof BridgeError && e.code === "BEARER_FILE_INVALID", String(e));
      assert.ok(e.message.includes(`--bearer-file ${file}`), e.message);
      assert.doesNotMatch(e.message, /secret-part/);
    }
  });
});
