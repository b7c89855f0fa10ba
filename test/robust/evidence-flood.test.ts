/**
 * Fresh evidence is budgeted per client. An anonymous client floods /.well-known/attestation with
 * new nonces from many connections for 15 s while 20 honest clients, each from its own loopback
 * address (127.0.0.2 … .21), run the real `verify` command with exporter freshness, and a real
 * `bridge --listen` (from 127.0.0.30) keeps serving requests: every honest `verify` exits 0, the
 * bridge answers every request, and the flooder gets 429 past its share with a Retry-After.
 * Also: the bridge refuses `Origin: null` (sandboxed frames, data: and file: pages) with 403.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { countingUpstream, type CountingUpstream } from "../client/harness.js";
import { devDir, metric, scrape, spawnServe, type SpawnedServe } from "../support/robust.js";
import { CLI, DIST, REPO } from "../support/vectors.js";
import { sleep, tempDir, within } from "../support/wait.js";

const PRELOAD = resolve(DIST, "test/support/local-address.js");
const FLOOD_MS = 15_000;
const HONEST = 20;

let up: CountingUpstream;
let serve: SpawnedServe | undefined;
let policy = "";
let bridge: { child: ChildProcess; port: number; stderr: () => string } | undefined;

/** A CLI command as a process whose TCP connections start from `localAddress`. */
function fromAddress(localAddress: string, args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", PRELOAD, CLI, ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", AMCP_TEST_LOCAL_ADDRESS: localAddress },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return { child, output: () => out, exited: new Promise((r) => child.once("exit", (code) => r(code))) };
}

/** A plain-HTTP request to the bridge: its status. */
function viaBridge(path: string, headers: Record<string, string> = {}, method = "POST"): Promise<number> {
  return within(
    new Promise((done, fail) => {
      const req = http.request({ host: "127.0.0.1", port: bridge!.port, path, method, headers: { "content-type": "application/json", ...headers }, agent: false }, (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode ?? 0));
      });
      req.on("error", fail);
      req.end(method === "POST" ? '{"jsonrpc":"2.0","id":1,"method":"ping"}' : undefined);
    }),
    20_000,
    `bridge ${method} ${path}`,
  );
}

before(async () => {
  up = await countingUpstream();
  serve = await spawnServe(`upstream: { url: "http://127.0.0.1:${up.port}" }\nattestationEndpoint: { quotesPerClientPerMinute: 10 }\n`);
  const root = join(devDir(), "root.pem");
  const v = await verifyRaTlsCertificate(serve.certDer, { trustRoots: [readFileSync(root, "utf8")] });
  assert.ok(v.ok && v.quote?.teeType === "SGX", JSON.stringify(v.failed));
  policy = join(tempDir("amcp-flood-"), "policy.yaml");
  writeFileSync(policy, stringify({ trustRoots: [root], measurements: [{ mrenclave: v.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" }));
  const b = fromAddress("127.0.0.30", ["bridge", "--remote", `https://127.0.0.1:${serve.port}/`, "--policy", policy, "--listen", "127.0.0.1:0"]);
  const port = await within(
    (async () => {
      for (;;) {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(b.output());
        if (m) return Number(m[1]);
        if (b.child.exitCode !== null) throw new Error(`the bridge exited: ${b.output()}`);
        await sleep(25);
      }
    })(),
    20_000,
    "the bridge listening",
  );
  bridge = { child: b.child, port, stderr: b.output };
});
after(async () => {
  if (bridge && bridge.child.exitCode === null) bridge.child.kill("SIGTERM");
  await serve?.stop();
  await up.close();
});

/** One fresh-evidence request on a new connection: the status, Retry-After, and the quote of a 200 (base64). */
function freshEvidence(s: SpawnedServe): Promise<{ status: number; retryAfter: string | undefined; quote?: string }> {
  return new Promise((done) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port: s.port,
        path: `/.well-known/attestation?nonce=${randomBytes(16).toString("hex")}`,
        agent: false,
        ca: s.certPem,
        checkServerIdentity: () => undefined,
        headers: { connection: "close" },
        timeout: 10_000,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => {
          let quote: string | undefined;
          try {
            quote = res.statusCode === 200 ? (JSON.parse(body) as { quote?: string }).quote : undefined;
          } catch {
            // not evidence: counted by its status only
          }
          done({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"], ...(quote ? { quote } : {}) });
        });
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => done({ status: 0, retryAfter: undefined }));
    req.end();
  });
}

describe("fresh evidence under a flood", { timeout: 120_000 }, () => {
  it(`one client flooding for ${FLOOD_MS / 1000} s from many connections; ${HONEST} honest verify (exporter) all exit 0 and a running bridge --listen keeps serving`, async () => {
    const s = serve!;
    const statuses = new Map<number, number>();
    const retryAfters = new Set<string>();
    const quotes = new Set<string>();
    const deadline = performance.now() + FLOOD_MS;
    const flood = Array.from({ length: 4 }, async () => {
      while (performance.now() < deadline) {
        const r = await freshEvidence(s);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.retryAfter) retryAfters.add(r.retryAfter);
        if (r.quote) quotes.add(r.quote);
        await sleep(20);
      }
    });
    const honest = (async () => {
      await sleep(1000);
      const runs: Promise<{ code: number | null; output: string }>[] = [];
      for (let i = 0; i < HONEST; i++) {
        const v = fromAddress(`127.0.0.${2 + i}`, ["verify", `https://127.0.0.1:${s.port}/`, "--policy", policy]);
        runs.push(within(v.exited, 60_000, `verify #${i}`).then((code) => ({ code, output: v.output() })));
        await sleep(500);
      }
      return Promise.all(runs);
    })();
    const bridged = (async () => {
      const got: number[] = [];
      while (performance.now() < deadline) {
        got.push(await viaBridge("/"));
        await sleep(1000);
      }
      return got;
    })();
    const [verdicts, bridgeStatuses] = await Promise.all([honest, bridged, ...flood]);

    const failed = verdicts.map((v, i) => ({ i, ...v })).filter((v) => v.code !== 0);
    assert.deepEqual(
      failed.map((f) => `#${f.i} exit ${f.code}: ${f.output.slice(-400)}`),
      [],
    );
    assert.ok(bridgeStatuses.length >= 10 && bridgeStatuses.every((x) => x === 200), `bridge answers: ${bridgeStatuses.join(",")}`);
    assert.equal(bridge!.child.exitCode, null, `the bridge exited: ${bridge!.stderr()}`);
    const flooded = [...statuses.entries()].map(([k, c]) => `${k}×${c}`).join(" ");
    // The flooder took part in its share of quotes (10 per minute, 10 at once; its concurrent
    // requests may share a batched quote, each quote charged once) and then got 429s with a Retry-After.
    assert.ok(quotes.size <= 10 + Math.ceil(FLOOD_MS / 6000), `flood: ${flooded} over ${quotes.size} quotes`);
    assert.ok((statuses.get(429) ?? 0) > 0, `flood: ${flooded}`);
    assert.ok(
      [...retryAfters].every((r) => Number(r) >= 1 && Number(r) <= 60),
      [...retryAfters].join(","),
    );
    const text = await scrape(s.metricsPort);
    assert.ok(metric(text, "attestable_mcp_share_refusals_total", 'resource="evidence",scope="client"') > 0);
    console.log(`evidence flood: ${flooded} over ${quotes.size} quotes; ${verdicts.length} verify exit 0; bridge ${bridgeStatuses.length} requests, all 200`);
  });
});

describe("bridge --listen and browser origins", { timeout: 30_000 }, () => {
  it("`Origin: null` is foreign: 403 for POST and GET /sse, nothing forwarded; a loopback Origin is served", async () => {
    const before = up.seen.length;
    assert.equal(await viaBridge("/", { origin: "null" }), 403);
    assert.equal(await viaBridge("/sse", { origin: "null", accept: "text/event-stream" }, "GET"), 403);
    assert.equal(up.seen.length, before, "nothing reached the upstream");
    assert.equal(await viaBridge("/", { origin: `http://127.0.0.1:${bridge!.port}` }), 200);
  });
});
