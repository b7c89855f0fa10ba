/**
 * `auth.mode: bearer` end to end: keys made by the real `new-key`, `serve` spawned with a stdio
 * upstream (the mcp2 test server) and with a counting HTTP upstream, the v2 SDK client, and
 * `bridge --stdio|--listen --bearer-file` with the v1 and v2 SDK clients. Refused callers reach
 * nothing; sessions belong to the key that opened them; the token is in no output line.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import { join } from "node:path";
import { attestedFetch, type AttestedFetch } from "../../proxy/client/connector.js";
import { buildPolicy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { connectHttp, connectV1Http } from "../support/mcp2/client.js";
import { SERVER_JS } from "../support/mcp2/spawn.js";
import { devDir, fetchVia, pinnedAgent, rawExchange, spawnServe, type SpawnedServe } from "../support/robust.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { CLI } from "../support/vectors.js";
import { tempDir, waitFor, within } from "../support/wait.js";

const dir = tempDir("amcp-bearer-");
const keysFile = join(dir, "keys.txt");
const newKey = (name: string): string => execFileSync(process.execPath, [CLI, "new-key", name, "--keys-file", keysFile], { encoding: "utf8" }).trim();

const bearerYaml = `auth: { mode: bearer, bearer: { keysFile: ${JSON.stringify(keysFile)} } }\n`;
const JSON_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };
const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** A policy file (and its fetch) that trusts this serve. */
async function trust(s: SpawnedServe): Promise<{ file: string; fetch: AttestedFetch }> {
  const rootPath = join(devDir(), "root.pem");
  const verdict = await verifyRaTlsCertificate(s.certDer, { trustRoots: [readFileSync(rootPath, "utf8")] });
  assert.ok(verdict.ok && verdict.quote?.teeType === "SGX");
  const doc = { trustRoots: [rootPath], measurements: [{ mrenclave: verdict.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" };
  const file = join(dir, `policy-${s.port}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return { file, fetch: attestedFetch(await buildPolicy(doc, "(test policy)", dir, (p) => readFile(p, "utf8"))) };
}

/** `attestable-mcp bridge` against the serve on `port`, with `extra` arguments; its stdout and stderr kept. */
function spawnBridge(port: number, policyFile: string, extra: string[]) {
  const child = spawn(process.execPath, [CLI, "bridge", "--remote", `https://127.0.0.1:${port}/mcp`, "--policy", policyFile, ...extra], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = (): Promise<unknown> => within(new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r))), 10_000, `bridge exit\n${err}`);
  return { child, out: () => out, err: () => err, exited };
}

describe("new-key", () => {
  it("prints a token once, appends NAME and its SHA-256 to a 0600 file, refuses a name twice or malformed", () => {
    const file = join(dir, "own-keys.txt");
    const token = execFileSync(process.execPath, [CLI, "new-key", "ops", "--keys-file", file], { encoding: "utf8" }).trim();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(file, "utf8");
    assert.doesNotMatch(text, new RegExp(token));
    assert.match(text, /^ops [0-9a-f]{64}\n$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    for (const name of ["ops", "bad name", "x".repeat(65)]) {
      const r = spawnSyncCli(["new-key", name, "--keys-file", file]);
      assert.equal(r.code, 2, `${name}: ${r.err}`);
    }
    assert.equal(readFileSync(file, "utf8"), text);
  });
});

function spawnSyncCli(args: string[]): { code: number | null; err: string } {
  try {
    execFileSync(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    return { code: 0, err: "" };
  } catch (e) {
    const x = e as { status: number | null; stderr: Buffer };
    return { code: x.status, err: x.stderr.toString() };
  }
}

describe("serve with auth.mode: bearer, a stdio upstream", { timeout: 120_000 }, () => {
  let s: SpawnedServe;
  let alice: string;
  let bob: string;
  let trusted: { file: string; fetch: AttestedFetch };
  const aliceFile = join(dir, "alice.token");
  const agent = (): ReturnType<typeof pinnedAgent> => pinnedAgent(s.certPem);
  before(async () => {
    alice = newKey("alice");
    bob = newKey("bob");
    s = await spawnServe(
      `attestationEndpoint: { quotesPerMinute: 100000, quotesPerClientPerMinute: 100000 }\n${bearerYaml}upstream:\n  command: ${JSON.stringify([process.execPath, SERVER_JS, "--stdio", "--era", "dual"])}\n`,
      {
        env: { ATTESTABLE_MCP_LOG_LEVEL: "trace" },
      },
    );
    trusted = await trust(s);
    writeFileSync(aliceFile, `${alice}\n`, { mode: 0o600 });
  });
  after(async () => {
    await trusted?.fetch.close().catch(() => {});
    await s?.stop();
  });

  it("no token, a wrong token, another scheme: 401 with WWW-Authenticate; /healthz and /.well-known/attestation stay open", async () => {
    const a = agent();
    const init = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    const none = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: JSON_HEADERS, body: init });
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], "Bearer");
    assert.equal((JSON.parse(none.body) as { error: { code: number } }).error.code, -32000);
    const wrong = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth(`${alice}x`) }, body: init });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers["www-authenticate"], 'Bearer error="invalid_token"');
    const basic = await fetchVia(a, s.port, "/sse", { headers: { authorization: "Basic YTpi" } });
    assert.equal(basic.status, 401);
    assert.equal(basic.headers["www-authenticate"], "Bearer");
    assert.equal((await fetchVia(a, s.port, "/healthz")).status, 200);
    assert.notEqual((await fetchVia(a, s.port, "/.well-known/attestation?nonce=" + "ab".repeat(32))).status, 401);
    a.destroy();
  });

  it("a key made by new-key works with the v2 SDK client (attestedFetch and requestInit headers)", async () => {
    const c = await connectHttp(`https://127.0.0.1:${s.port}/mcp`, { mode: "auto", fetch: trusted.fetch, requestInit: { headers: auth(alice) } });
    try {
      const r = (await c.client.callTool({ name: "echo", arguments: { message: "hi" } })) as { content: Array<{ text?: string }> };
      assert.match(r.content[0]?.text ?? "", /hi/);
    } finally {
      await c.close();
    }
  });

  it("a legacy session opened by one key is refused (404) to another", async () => {
    const a = agent();
    const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } };
    const opened = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth(alice) }, body: JSON.stringify(initialize) });
    assert.equal(opened.status, 200, opened.body);
    const sid = opened.headers["mcp-session-id"];
    assert.equal(typeof sid, "string");
    const next = (token: string) =>
      fetchVia(a, s.port, "/mcp", {
        method: "POST",
        headers: { ...JSON_HEADERS, ...auth(token), "mcp-session-id": sid as string, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
      });
    assert.equal((await next(bob)).status, 404);
    assert.equal((await next(alice)).status, 202);
    a.destroy();
  });

  it("a legacy SSE session (/sse, /message) opened by one key is refused (404) to another", async () => {
    const a = agent();
    const stop = new AbortController();
    try {
      const endpoint = await within(
        new Promise<string>((resolve, reject) => {
          const req = https.request({ host: "127.0.0.1", port: s.port, path: "/sse", agent: a, headers: { accept: "text/event-stream", ...auth(alice) }, signal: stop.signal }, (res) => {
            let buf = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
              buf += c;
              const m = /event: endpoint\ndata: (\S+)\n/.exec(buf);
              if (m) resolve(m[1]!);
            });
            res.on("error", () => {});
          });
          req.on("error", (e) => (stop.signal.aborted ? undefined : reject(e)));
          req.end();
        }),
        10_000,
        "the /sse endpoint event",
      );
      assert.match(endpoint, /^\/message\?sessionId=/);
      const post = (token: string) => fetchVia(a, s.port, endpoint, { method: "POST", headers: { ...JSON_HEADERS, ...auth(token) }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
      assert.equal((await post(bob)).status, 404);
      assert.equal((await post(alice)).status, 202);
    } finally {
      stop.abort();
      a.destroy();
    }
  });

  it("bridge --stdio --bearer-file carries the key; the token is in no line the bridge writes", async () => {
    const b = spawnBridge(s.port, trusted.file, ["--stdio", "--bearer-file", aliceFile]);
    const line = (id: number): Promise<Record<string, unknown>> =>
      within(
        new Promise((resolve) => {
          const look = (): void => {
            const hit = b
              .out()
              .split("\n")
              .find((l) => l.includes(`"id":${id}`));
            if (hit) {
              b.child.stdout.off("data", look);
              resolve(JSON.parse(hit) as Record<string, unknown>);
            }
          };
          b.child.stdout.on("data", look);
          look();
        }),
        20_000,
        `bridge answer ${id}\n${b.err()}`,
      );
    try {
      b.child.stdin.write(
        `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } })}\n`,
      );
      assert.ok((await line(1)).result, b.out());
      b.child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
      b.child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "echo", arguments: { message: "via-bridge" } } })}\n`);
      assert.match(JSON.stringify(await line(2)), /via-bridge/);
    } finally {
      b.child.stdin.end();
      await b.exited();
    }
    assert.match(b.err(), /remote verified/);
    assert.ok(!b.out().includes(alice) && !b.err().includes(alice), "the token in the bridge's output");
  });

  it("bridge --listen --bearer-file: v1 and v2 SDK clients call tools, a local client's own wrong key is replaced; the token is in no line the bridge writes", async () => {
    const b = spawnBridge(s.port, trusted.file, ["--listen", "127.0.0.1:0", "--bearer-file", aliceFile]);
    try {
      await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(b.err()) || b.child.exitCode !== null, 20_000, "bridge --listen start");
      const url = `http://127.0.0.1:${/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(b.err())?.[1]}/mcp`;
      const echoed = (r: unknown): string => (r as { content: Array<{ text?: string }> }).content[0]?.text ?? "";
      const v1 = await connectV1Http(url);
      try {
        assert.match(echoed(await v1.client.callTool({ name: "echo", arguments: { message: "v1-via-listen" } })), /v1-via-listen/);
      } finally {
        await v1.close();
      }
      const v2 = await connectHttp(url, { mode: "auto", requestInit: { headers: auth("not-a-key") } });
      try {
        assert.match(echoed(await v2.client.callTool({ name: "echo", arguments: { message: "v2-via-listen" } })), /v2-via-listen/);
      } finally {
        await v2.close();
      }
    } finally {
      b.child.kill("SIGTERM");
      await b.exited();
    }
    assert.ok(!b.out().includes(alice) && !b.err().includes(alice), "the token in the bridge's output");
  });

  it("the tokens appear in no line of serve's output (trace level), the key names do", async () => {
    await s.stop();
    const out = s.output();
    assert.ok(out.length > 0);
    for (const t of [alice, bob]) assert.ok(!out.includes(t), "a token in the output");
    assert.match(out, /"subject":"alice"/);
  });
});

describe("serve with auth.mode: bearer, an HTTP upstream", { timeout: 60_000 }, () => {
  let s: SpawnedServe;
  let up: Upstream;
  let carol: string;
  const seen: Array<Record<string, unknown>> = [];
  before(async () => {
    carol = newKey("carol");
    up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
      seen.push({ ...req.headers });
      req.resume();
      req.on("end", () => res.end('{"ok":true}'));
    });
    s = await spawnServe(`${bearerYaml}upstream: { url: "http://127.0.0.1:${up.port}" }\n`);
  });
  after(async () => {
    await s?.stop();
    await up?.close();
  });

  it("refused callers (and upgrades) reach nothing; an accepted one arrives as X-Authenticated-Subject, without its token or a forged subject", async () => {
    const a = pinnedAgent(s.certPem);
    assert.equal((await fetchVia(a, s.port, "/mcp", { method: "POST", headers: JSON_HEADERS, body: "{}" })).status, 401);
    assert.equal((await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth("nope") }, body: "{}" })).status, 401);
    const upgrade = await rawExchange(s, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", (got) => got.includes("\r\n\r\n{"));
    assert.match(upgrade, /^HTTP\/1\.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n/);
    assert.equal(seen.length, 0);
    const ok = await fetchVia(a, s.port, "/mcp", { method: "POST", headers: { ...JSON_HEADERS, ...auth(carol), "x-authenticated-subject": "root" }, body: "{}" });
    assert.equal(ok.status, 200);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!["x-authenticated-subject"], "carol");
    assert.equal(seen[0]!.authorization, undefined);
    a.destroy();
  });
});
