/**
 * serve, end to end with real parts: TLS on loopback with the dev-attested RA-TLS certificate,
 * the official MCP SDK client, and @modelcontextprotocol/server-everything as a stdio child and as
 * an HTTP upstream. The client checks the served certificate's evidence before it sends a byte.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { loadConfig } from "../../proxy/server/config.js";
import { CLAIM_BATCH_ROOT, CLAIM_BATCH_SIZE, type InclusionProof } from "../../proxy/core/protocol.js";
import { decodeCbor } from "../../proxy/evidence/ratls/cbor.js";
import { evidenceLeaf, verifyInclusion } from "../../proxy/evidence/merkle.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { parseCertificate } from "../../proxy/evidence/asn1/x509.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { EXPORTER_LABEL } from "../../proxy/server/wellknown.js";
import { assertStreamedProgress, EVERYTHING, startEverythingHttp } from "../support/everything.js";
import { pinnedFetch, servedCertificate } from "../support/tls-client.js";
import { CLI, REPO } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const silent = pino({ level: "silent" });

async function configFile(yaml: string): Promise<string> {
  const p = join(tempDir("amcp-serve-"), "serve.yaml");
  writeFileSync(p, yaml);
  return p;
}

interface Setup {
  running: RunningServer;
  provider: DevProvider;
  base: string;
  fetch: typeof globalThis.fetch;
  closeFetch: () => Promise<void>;
}

/** Start serve in-process; the client side checks the evidence, then pins the certificate. */
async function setup(upstreamYaml: string): Promise<Setup> {
  const devDir = join(tempDir("amcp-serve-dev-"), "dev");
  const file = await configFile(
    `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nmetrics: { listen: "127.0.0.1:0" }\nlog: { level: silent }\nshutdown: { drain: 2s }\n${upstreamYaml}`,
  );
  const config = await loadConfig({ file });
  const provider = await DevProvider.open({ dir: devDir, warn: () => {} });
  const running = await startServer(config, provider, silent);
  const cert = await servedCertificate("127.0.0.1", running.address.port);
  const verdict = await verifyRaTlsCertificate(cert, { trustRoots: [provider.rootPem] });
  assert.equal(verdict.ok, true, `the served certificate must verify: ${JSON.stringify(verdict.failed)}`);
  assert.equal(verdict.dev, true);
  const { fetch, close } = pinnedFetch(cert);
  return { running, provider, base: `https://127.0.0.1:${running.address.port}`, fetch, closeFetch: close };
}

async function teardown(s: Setup | undefined): Promise<void> {
  if (!s) return;
  await s.closeFetch();
  await s.running.close();
}

/** The MCP session exercise both upstream kinds must pass. */
async function exerciseMcp(s: Setup): Promise<void> {
  const transport = new StreamableHTTPClientTransport(new URL(`${s.base}/mcp`), { fetch: s.fetch });
  const client = new Client({ name: "e2e", version: "1.0.0" });
  const logs: { at: number; level: string }[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push({ at: Date.now(), level: n.params.level });
  });
  await client.connect(transport);
  try {
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === "echo"));
    const echo = await client.callTool({ name: "echo", arguments: { message: "through the enclave" } });
    assert.match(JSON.stringify(echo.content), /through the enclave/);

    // Progress arrives while the operation runs, not bunched at the end.
    await assertStreamedProgress(client);

    // Server log messages on the background GET stream.
    await client.setLoggingLevel("debug");
    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });
    const deadline = Date.now() + 12_000;
    while (logs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(logs.length >= 1, "a server log message arrived");
    await client.callTool({ name: "toggle-simulated-logging", arguments: {} });

    await transport.terminateSession(); // DELETE
  } finally {
    await client.close();
  }
}

/**
 * Open the session's background GET stream, drop it mid-stream, and open it again: the upstream
 * must have seen the first one end (an upstream that still holds it answers 409).
 */
async function reconnectGetStream(s: Setup): Promise<void> {
  const init = await s.fetch(`${s.base}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
  });
  assert.equal(init.status, 200);
  const session = init.headers.get("mcp-session-id");
  assert.ok(session);
  await init.body?.cancel();
  const headers = { accept: "text/event-stream", "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" };
  await s.fetch(`${s.base}/mcp`, {
    method: "POST",
    headers: { ...headers, accept: "application/json, text/event-stream", "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  for (let round = 0; round < 3; round++) {
    const ctl = new AbortController();
    const get = await s.fetch(`${s.base}/mcp`, { method: "GET", headers, signal: ctl.signal });
    assert.equal(get.status, 200, `GET stream round ${round}: ${get.status}`);
    assert.match(get.headers.get("content-type") ?? "", /text\/event-stream/);
    ctl.abort(); // the client leaves mid-stream
    await get.body?.cancel().catch(() => {});
    await new Promise((r) => setTimeout(r, 150));
  }
  await s.fetch(`${s.base}/mcp`, { method: "DELETE", headers: { "mcp-session-id": session } });
}

describe("serve with a stdio upstream (server-everything as a child per session)", { timeout: 90_000 }, () => {
  let s: Setup | undefined;
  before(async () => {
    s = await setup(`upstream: { command: ["${process.execPath}", "${EVERYTHING}", "stdio"], maxSessions: 4, maxSessionsPerClient: 4 }\n`);
  });
  after(() => teardown(s));

  it("MCP SDK client: initialize, tools/list, echo, long-running progress, server logs, DELETE", async () => {
    await exerciseMcp(s!);
  });

  it("a client that drops the GET stream mid-way can reopen it: nothing stays open upstream (no 409)", async () => {
    await reconnectGetStream(s!);
  });

  it("the legacy HTTP+SSE transport works too", async () => {
    const transport = new SSEClientTransport(new URL(`${s!.base}/sse`), { fetch: s!.fetch, eventSourceInit: { fetch: s!.fetch } });
    const client = new Client({ name: "e2e-sse", version: "1.0.0" });
    await client.connect(transport);
    try {
      const r = await client.callTool({ name: "echo", arguments: { message: "legacy" } });
      assert.match(JSON.stringify(r.content), /legacy/);
    } finally {
      await client.close();
    }
  });

  it("GET /.well-known/attestation?nonce: evidence verifies, its batch root covers the nonce, binds the served key", async () => {
    const nonce = "00112233445566778899aabbccddeeff";
    const res = await s!.fetch(`${s!.base}/.well-known/attestation?nonce=${nonce}`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { quote: string; claims: string; certificateSha256: string; proof: { index: number; size: number; path: string[] }; dev: boolean };
    assert.equal(body.dev, true);
    const quote = new Uint8Array(Buffer.from(body.quote, "base64"));
    const claimsBytes = new Uint8Array(Buffer.from(body.claims, "base64"));
    const v = await verifyQuote(quote, { trustRoots: [s!.provider.rootPem] });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.quote?.reportData, createHash("sha256").update(claimsBytes).digest("hex") + "00".repeat(32));
    const claims = decodeCbor(claimsBytes) as Map<string, Uint8Array>;
    const proof = { ...body.proof, path: body.proof.path.map((h) => new Uint8Array(Buffer.from(h, "hex"))) };
    assert.deepEqual(verifyInclusion(evidenceLeaf(new Uint8Array(Buffer.from(nonce, "hex")), null), proof, claims.get(CLAIM_BATCH_ROOT)!), { ok: true, value: true });
    assert.equal(claims.get(CLAIM_BATCH_SIZE), body.proof.size);
    const servedDer = await servedCertificate("127.0.0.1", s!.running.address.port);
    const served = parseCertificate(servedDer);
    assert.deepEqual(decodeCbor(claims.get("pubkey-hash")!), [1, new Uint8Array(createHash("sha256").update(served.spki).digest())]);
    assert.equal(body.certificateSha256, createHash("sha256").update(servedDer).digest("hex"), "the answer names the served certificate");
  });

  it("POST /.well-known/attestation: the batch root covers this connection's exporter, and not another's", async () => {
    const nonce = "a1b2c3d4";
    const ask = (agent: HttpsAgent) =>
      new Promise<{ exporter: string; claims: Map<string, Uint8Array>; quote: Uint8Array; proof: InclusionProof }>((resolve, reject) => {
        const req = httpsRequest(
          { host: "127.0.0.1", port: s!.running.address.port, path: "/.well-known/attestation", method: "POST", agent, headers: { "content-type": "application/json" } },
          (res) => {
            // This connection's exporter, computed by the client on its own end.
            const exporter = (res.socket as TLSSocket).exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.from(nonce, "hex")).toString("hex");
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const body = JSON.parse(Buffer.concat(chunks).toString()) as { claims: string; quote: string; proof: { index: number; size: number; path: string[] } };
              resolve({
                exporter,
                proof: { ...body.proof, path: body.proof.path.map((h) => new Uint8Array(Buffer.from(h, "hex"))) },
                claims: decodeCbor(Buffer.from(body.claims, "base64")) as Map<string, Uint8Array>,
                quote: new Uint8Array(Buffer.from(body.quote, "base64")),
              });
            });
          },
        );
        req.on("error", reject);
        req.end(JSON.stringify({ nonce }));
      });
    const mk = () => new HttpsAgent({ rejectUnauthorized: false, keepAlive: true, maxSockets: 1 });
    const a1 = mk();
    const a2 = mk();
    try {
      const covers = (x: { claims: Map<string, Uint8Array>; proof: InclusionProof }, exporter: string) =>
        verifyInclusion(evidenceLeaf(new Uint8Array(Buffer.from(nonce, "hex")), new Uint8Array(Buffer.from(exporter, "hex"))), x.proof, x.claims.get(CLAIM_BATCH_ROOT)!).ok;
      const one = await ask(a1);
      assert.equal(covers(one, one.exporter), true);
      assert.equal((await verifyQuote(one.quote, { trustRoots: [s!.provider.rootPem] })).ok, true);
      const two = await ask(a2);
      assert.equal(covers(two, two.exporter), true);
      assert.notEqual(two.exporter, one.exporter);
      assert.equal(covers(one, two.exporter), false);
    } finally {
      a1.destroy();
      a2.destroy();
    }
  });

  it("bad nonces get 400 with a reason; other methods 405; /healthz 200; metrics count requests", async () => {
    for (const q of ["", "?nonce=", "?nonce=abc", `?nonce=${"00".repeat(65)}`, "?nonce=zz"]) {
      const r = await s!.fetch(`${s!.base}/.well-known/attestation${q}`);
      assert.equal(r.status, 400, q);
      assert.match(((await r.json()) as { error: string }).error, /nonce/);
    }
    assert.equal((await s!.fetch(`${s!.base}/.well-known/attestation`, { method: "PUT" })).status, 405);
    const h = await s!.fetch(`${s!.base}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(((await h.json()) as { status: string }).status, "ok");
    const port = (s!.running.metricsServer!.address() as { port: number }).port;
    const text = await new Promise<string>((resolve, reject) => {
      httpRequest({ host: "127.0.0.1", port, path: "/metrics" }, (res) => {
        let t = "";
        res.on("data", (c) => (t += c));
        res.on("end", () => resolve(t));
      })
        .on("error", reject)
        .end();
    });
    assert.match(text, /attestable_mcp_requests_total\{method="GET",status="200"\} \d+/);
    assert.match(text, /attestable_mcp_quotes_total\{purpose="certificate"\} 2/);
    assert.match(text, /attestable_mcp_tls_handshakes_total\{result="ok"\} \d+/);
    assert.match(text, /attestable_mcp_certificate_expiry_timestamp_seconds \d+/);
    assert.match(text, /attestable_mcp_request_duration_seconds_count\{method="GET"\} [1-9]\d*/);
  });

  it("rotation under load: four sessions mid-operation go on, new connections see the new certificate", async () => {
    const sessions = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const transport = new StreamableHTTPClientTransport(new URL(`${s!.base}/mcp`), { fetch: s!.fetch });
        const client = new Client({ name: `e2e-rotate-${i}`, version: "1.0.0" });
        await client.connect(transport);
        return client;
      }),
    );
    try {
      const before = s!.running.identity.current.fingerprint;
      const t0 = Date.now();
      const progress: number[][] = sessions.map(() => []);
      const calls = sessions.map((client, i) =>
        client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } }, undefined, {
          onprogress: () => progress[i]!.push(Date.now() - t0),
          timeout: 20_000,
        }),
      );
      await new Promise((r) => setTimeout(r, 700));
      await s!.running.identity.rotate();
      const rotatedAt = Date.now() - t0;
      const newCert = await servedCertificate("127.0.0.1", s!.running.address.port);
      assert.equal(createHash("sha256").update(newCert).digest("hex"), s!.running.identity.current.fingerprint);
      assert.notEqual(s!.running.identity.current.fingerprint, before);
      assert.equal((await verifyRaTlsCertificate(newCert, { trustRoots: [s!.provider.rootPem] })).ok, true);
      const results = await Promise.all(calls);
      assert.equal(results.length, 4);
      progress.forEach((p, i) =>
        assert.ok(
          p.some((t) => t > rotatedAt),
          `session ${i}: progress ${p.join(",")} (rotated at ${rotatedAt})`,
        ),
      );
    } finally {
      await Promise.all(sessions.map((c) => c.close()));
    }
  });
});

describe("serve with an HTTP upstream (server-everything in streamableHttp mode)", { timeout: 90_000 }, () => {
  let s: Setup | undefined;
  let upstream: Awaited<ReturnType<typeof startEverythingHttp>> | undefined;
  before(async () => {
    upstream = await startEverythingHttp();
    s = await setup(`upstream: { url: "http://127.0.0.1:${upstream.port}" }\n`);
  });
  after(async () => {
    await teardown(s);
    await upstream?.stop();
  });

  it("MCP SDK client: initialize, tools/list, echo, long-running progress, server logs, DELETE", async () => {
    await exerciseMcp(s!);
  });

  it("a client that drops the GET stream mid-way can reopen it: nothing stays open upstream (no 409)", async () => {
    await reconnectGetStream(s!);
  });

  it("/healthz turns 503 when the upstream stops answering", async () => {
    await upstream!.stop();
    const h = await s!.fetch(`${s!.base}/healthz`);
    assert.equal(h.status, 503);
    assert.match(JSON.stringify(await h.json()), /upstream connection failed/);
  });
});

describe("the serve command", { timeout: 60_000 }, () => {
  it("configs/dev.yaml serves (banner says how to check it, and its verify command trusts it); SIGTERM exits 0; a bad config exits 2 naming the key", async () => {
    const devDir = join(tempDir("amcp-cli-"), "dev");
    const child = spawn(process.execPath, [CLI, "serve", "--config", join(REPO, "configs/dev.yaml"), "--listen", "127.0.0.1:0", "--set", "metrics.listen=null", "--log-level", "warn"], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "", ATTESTABLE_MCP_ATTESTATION_DEV_DIR: devDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    let out = "";
    child.stderr.on("data", (c) => (err += c));
    child.stdout.on("data", (c) => (out += c));
    try {
      const deadline = Date.now() + 20_000;
      while (!/serving https:\/\/127\.0\.0\.1:(\d+)/.test(err) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const port = Number(/serving https:\/\/127\.0\.0\.1:(\d+)/.exec(err)?.[1]);
      assert.ok(port > 0, err);
      assert.match(err, /inspect cert\.pem --trust-root/);
      // The dev warning is a JSON log line (pino, level 40 = warn).
      const warning = out
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .find((l) => /dev attestation provider/.test(l.msg));
      assert.equal(warning?.level, 40, out);
      const cert = await servedCertificate("127.0.0.1", port);
      const provider = await DevProvider.open({ dir: devDir, warn: () => {} });
      const served = await verifyRaTlsCertificate(cert, { trustRoots: [provider.rootPem] });
      assert.equal(served.ok, true);
      // The first run: the banner names the served MRENCLAVE, and its verify command, run as
      // printed, trusts this server (a dev policy written beside the dev root, not a placeholder).
      assert.equal(served.quote?.teeType, "SGX");
      assert.equal(/measurement: +mrenclave ([0-9a-f]{64})/.exec(err)?.[1], served.quote.mrenclave, err);
      const printed = /attestable-mcp verify (https:\/\/\S+) --policy (\S+)/.exec(err);
      assert.ok(printed && printed[2]!.startsWith(devDir), err);
      const verified = spawn(process.execPath, [CLI, "verify", printed[1]!, "--policy", printed[2]!], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
      let verifyOut = "";
      verified.stdout.on("data", (c) => (verifyOut += c));
      verified.stderr.on("data", (c) => (verifyOut += c));
      assert.equal(await new Promise<number | null>((r) => verified.once("exit", (c) => r(c))), 0, verifyOut);
      assert.match(verifyOut, /Verdict: TRUSTED/);
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      child.kill("SIGTERM");
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 15_000))]);
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }

    // The enclave config outside an enclave: no /dev/attestation, no fallback to dev: exit 1.
    const noSgx = spawn(process.execPath, [CLI, "serve", "--config", join(REPO, "configs/enclave.yaml"), "--listen", "127.0.0.1:0", "--set", "metrics.listen=null"], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let noSgxErr = "";
    noSgx.stderr.on("data", (c) => (noSgxErr += c));
    assert.equal(await new Promise<number | null>((r) => noSgx.once("exit", (c) => r(c))), 1);
    assert.match(noSgxErr, /GRAMINE_UNAVAILABLE.*never used instead/);

    const bad = spawn(process.execPath, [CLI, "serve", "--config", join(REPO, "configs/dev.yaml"), "--set", "upstream.maxSessions=lots"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let badErr = "";
    bad.stderr.on("data", (c) => (badErr += c));
    const badCode = await new Promise<number | null>((r) => bad.once("exit", (c) => r(c)));
    assert.equal(badCode, 2);
    assert.match(badErr, /upstream\.maxSessions/);
    assert.match(badErr, /flag --set upstream\.maxSessions/);
  });
});
