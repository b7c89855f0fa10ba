/**
 * Both ends attested: the connector presents its own dev RA-TLS identity to `serve` in
 * `clientAttestation: required` mode, and verifies the server's at the same time. The upstream
 * sees the client's measurement; without an identity the client is refused and nothing reaches
 * the upstream. With bearer keys as well, a caller needs both.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { attestedFetch, rejectionOf } from "../../proxy/client/connector.js";
import { loadConfig } from "../../proxy/server/config.js";
import { buildPolicy, type Policy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { servedCertificate } from "../support/tls-client.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { tempDir } from "../support/wait.js";

describe("mutual attestation end to end: attestedFetch with a client identity against serve (required)", { timeout: 60_000 }, () => {
  let running: RunningServer;
  let upstream: Upstream;
  const seen: IncomingHttpHeaders[] = [];
  let client: MintedIdentity;
  let clientMrenclave: string;
  let policy: Policy;
  let base: string;

  before(async () => {
    const dir = tempDir("amcp-mutual-e2e-");
    const devDir = join(dir, "dev");
    // The client enclave: same dev PKI, another measurement.
    const clientProvider = await DevProvider.open({ dir: devDir, mrenclave: new Uint8Array(32).fill(0xc1), warn: () => {} });
    client = await mintIdentity({ provider: clientProvider, keyType: "P-256" });
    const cv = await verifyRaTlsCertificate(client.certDer, { trustRoots: [clientProvider.rootPem] });
    assert.ok(cv.ok && cv.quote?.teeType === "SGX", JSON.stringify(cv.failed));
    clientMrenclave = cv.quote.mrenclave;
    assert.equal(clientMrenclave, "c1".repeat(32));

    upstream = await startUpstream((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on("end", () => res.end('{"ok":true}'));
    });
    const clientPolicy = join(dir, "clients.yaml");
    writeFileSync(
      clientPolicy,
      `trustRoots: ["${join(devDir, "root.pem")}"]\nmeasurements: [{ mrenclave: "${clientMrenclave}" }]\nallowDebug: true\ntcb: { require: false }\nfreshness: certificate\n`,
    );
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nupstream: { url: "http://127.0.0.1:${upstream.port}" }\nclientAttestation: { mode: required, policy: "${clientPolicy}" }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n`,
    );
    const serverProvider = await DevProvider.open({ dir: devDir, warn: () => {} });
    running = await startServer(await loadConfig({ file }), serverProvider, pino({ level: "silent" }));
    base = `https://127.0.0.1:${running.address.port}`;
    const sv = await verifyRaTlsCertificate(await servedCertificate("127.0.0.1", running.address.port), { trustRoots: [serverProvider.rootPem] });
    assert.ok(sv.quote?.teeType === "SGX");
    policy = await buildPolicy(
      { trustRoots: ["dev/root.pem"], measurements: [{ mrenclave: sv.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" },
      "(test)",
      dir,
      (p) => readFile(p, "utf8"),
    );
  });
  after(async () => {
    await running?.close();
    await upstream?.close();
  });

  it("each side verifies the other; the upstream sees the client's measurement and verdict", async () => {
    const f = attestedFetch({ policy, clientIdentity: { keyPem: client.keyPem, certPem: client.certPem } });
    try {
      const res = await f(`${base}/mcp`, { method: "POST", body: "{}", headers: { "content-type": "application/json", "X-Attested-Client-Mrenclave": "ff".repeat(32) } });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ok: true });
    } finally {
      await f.close();
    }
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!["x-attested-client-verdict"], "trusted");
    assert.equal(seen[0]!["x-attested-client-mrenclave"], clientMrenclave, "the forged client-sent value never arrives");
    assert.match(String(seen[0]!["x-attested-client-mrsigner"]), /^[0-9a-f]{64}$/);
  });

  it("the same client without its identity is refused, and the upstream receives nothing", async () => {
    const before = seen.length;
    const f = attestedFetch({ policy });
    try {
      const res = await f(`${base}/mcp`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } }).catch((e: Error) => e);
      // The server's certificate verified; its fresh-evidence request is where the server's own
      // refusal shows, and the verdict says why.
      const rejection = rejectionOf(res);
      assert.ok(rejection, `a rejection, got ${String(res)}`);
      assert.equal(rejection.verdict.failed?.check, "freshness.response");
      assert.match(rejection.message, /answered 403: .*client attestation required: present an RA-TLS client certificate/);
    } finally {
      await f.close();
    }
    assert.equal(seen.length, before);
  });
});

describe("mutual attestation and bearer keys together: both must pass", { timeout: 60_000 }, () => {
  let running: RunningServer;
  let upstream: Upstream;
  const seen: IncomingHttpHeaders[] = [];
  let client: MintedIdentity;
  let policy: Policy;
  let base: string;
  const token = "composed-token-0123456789";

  before(async () => {
    const dir = tempDir("amcp-mutual-bearer-");
    const devDir = join(dir, "dev");
    const clientProvider = await DevProvider.open({ dir: devDir, mrenclave: new Uint8Array(32).fill(0xc2), warn: () => {} });
    client = await mintIdentity({ provider: clientProvider, keyType: "P-256" });
    upstream = await startUpstream((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on("end", () => res.end('{"ok":true}'));
    });
    writeFileSync(join(dir, "keys.txt"), `ops ${createHash("sha256").update(token).digest("hex")}\n`);
    writeFileSync(
      join(dir, "clients.yaml"),
      `trustRoots: ["${join(devDir, "root.pem")}"]\nmeasurements: [{ mrenclave: "${"c2".repeat(32)}" }]\nallowDebug: true\ntcb: { require: false }\nfreshness: certificate\n`,
    );
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nupstream: { url: "http://127.0.0.1:${upstream.port}" }\nclientAttestation: { mode: required, policy: "${join(dir, "clients.yaml")}" }\nauth: { mode: bearer, bearer: { keysFile: keys.txt } }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n`,
    );
    const serverProvider = await DevProvider.open({ dir: devDir, warn: () => {} });
    running = await startServer(await loadConfig({ file }), serverProvider, pino({ level: "silent" }));
    base = `https://127.0.0.1:${running.address.port}`;
    const sv = await verifyRaTlsCertificate(await servedCertificate("127.0.0.1", running.address.port), { trustRoots: [serverProvider.rootPem] });
    assert.ok(sv.quote?.teeType === "SGX");
    policy = await buildPolicy(
      { trustRoots: ["dev/root.pem"], measurements: [{ mrenclave: sv.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" },
      "(test)",
      dir,
      (p) => readFile(p, "utf8"),
    );
  });
  after(async () => {
    await running?.close();
    await upstream?.close();
  });

  const post = async (withIdentity: boolean, headers: Record<string, string>): Promise<Response | Error> => {
    const f = attestedFetch({ policy, ...(withIdentity ? { clientIdentity: { keyPem: client.keyPem, certPem: client.certPem } } : {}) });
    try {
      return await f(`${base}/mcp`, { method: "POST", body: "{}", headers: { "content-type": "application/json", ...headers } }).catch((e: Error) => e);
    } finally {
      await f.close();
    }
  };

  it("an attested client with the key passes as both; with either missing, nothing reaches the upstream", async () => {
    const ok = await post(true, { authorization: `Bearer ${token}` });
    assert.ok(!(ok instanceof Error), String(ok));
    assert.equal(ok.status, 200);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!["x-attested-client-verdict"], "trusted");
    assert.equal(seen[0]!["x-attested-client-mrenclave"], "c2".repeat(32));
    assert.equal(seen[0]!["x-authenticated-subject"], "ops");

    const noKey = await post(true, {});
    assert.ok(!(noKey instanceof Error), String(noKey));
    assert.equal(noKey.status, 401);
    assert.equal(noKey.headers.get("www-authenticate"), "Bearer");

    const noIdentity = await post(false, { authorization: `Bearer ${token}` });
    assert.match(rejectionOf(noIdentity)?.message ?? String(noIdentity), /answered 403: .*client attestation required/);
    assert.equal(seen.length, 1);
  });
});
