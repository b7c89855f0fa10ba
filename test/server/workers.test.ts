/**
 * `workers: 2`: two processes on one port, each with its own RA-TLS key (no key shared over IPC),
 * both verifying against the dev root; requests answered by both; SIGTERM drains both and the
 * primary exits 0. And `workers > 1` with a stdio upstream is refused naming the key.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { loadConfig } from "../../proxy/server/config.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { parseCertificate } from "../../proxy/evidence/asn1/x509.js";
import { servedCertificate } from "../support/tls-client.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { CLI } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const exitOf = (child: ChildProcess): Promise<number | string> =>
  new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(child.exitCode ?? child.signalCode!) : child.once("exit", (code, signal) => r(code ?? signal ?? "?"))));

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A new connection per request (agent: false), so the cluster's round robin spreads them.
    const req = httpsRequest({ host: "127.0.0.1", port, path, rejectUnauthorized: false, agent: false }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("serve with workers: 2", { timeout: 90_000 }, () => {
  let upstream: Upstream | null = null;
  let child: ChildProcess | null = null;
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await upstream?.close();
  });

  it("each worker serves its own attested key on one port; SIGTERM drains both and exits 0", async () => {
    upstream = await startUpstream((req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end(`pid ${process.pid} ${req.url}`);
    });
    const dir = tempDir("amcp-workers-");
    const devDir = join(dir, "dev");
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      [
        `listen: "127.0.0.1:0"`,
        `attestation: { provider: dev, dev: { dir: ${JSON.stringify(devDir)} } }`,
        `upstream: { url: "http://127.0.0.1:${upstream.port}" }`,
        `metrics: { listen: null }`,
        `log: { level: warn }`,
        `shutdown: { drain: 2s }`,
        `workers: 2`,
        "",
      ].join("\n"),
    );
    child = spawn(process.execPath, [CLI, "serve", "--config", file], { env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr!.on("data", (c) => (err += c));
    child.stdout!.resume();
    const deadline = Date.now() + 30_000;
    while (!/serving https:\/\/127\.0\.0\.1:(\d+)/.test(err) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    const port = Number(/serving https:\/\/127\.0\.0\.1:(\d+)/.exec(err)?.[1]);
    assert.ok(port > 0, err);
    assert.match(err, /2 workers/);

    const provider = await DevProvider.open({ dir: devDir, warn: () => {} });
    const keys = new Set<string>();
    // Round robin over two workers: two keys appear within a few connections.
    for (let i = 0; i < 12 && keys.size < 2; i++) {
      const der = await servedCertificate("127.0.0.1", port);
      const verdict = await verifyRaTlsCertificate(der, { trustRoots: [provider.rootPem] });
      assert.equal(verdict.ok, true, JSON.stringify(verdict.failed));
      keys.add(Buffer.from(parseCertificate(der).spki).toString("hex"));
    }
    assert.equal(keys.size, 2, "two workers, two keys");
    for (let i = 0; i < 4; i++) {
      const r = await get(port, `/x${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.body, `pid ${process.pid} /x${i}`);
    }

    child.kill("SIGTERM");
    const code = await Promise.race([exitOf(child), new Promise<string>((r) => setTimeout(() => r("timeout"), 20_000))]);
    assert.equal(code, 0, err);
  });

  it("refuses workers > 1 with a stdio upstream, naming the key", async () => {
    await assert.rejects(
      loadConfig({
        env: {},
        sets: [
          ["attestation.provider", "dev"],
          ["upstream.command", "[node, server.js]"],
          ["workers", "2"],
        ],
      }),
      (e: Error & { code?: string; key?: string }) => e.code === "CONFIG_INVALID" && e.key === "workers" && /flag --set workers/.test(e.message),
    );
    const ok = await loadConfig({
      env: {},
      sets: [
        ["attestation.provider", "dev"],
        ["upstream.command", "[node, server.js]"],
        ["workers", "1"],
      ],
    });
    assert.equal(ok.workers, 1);
  });
});
