/**
 * Both ends attested: the connector presents its own dev RA-TLS identity to `serve` in
 * `clientAttestation: required` mode, and verifies the server's at the same time. The upstream
 * sees the client's measurement; without an identity the client is refused and nothing reaches
 * the upstream. With bearer keys as well, a caller needs both: its attestation and a key.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { attestedFetch, rejectionOf } from "../../proxy/client/connector.js";
import { newKey } from "../../proxy/cli/new-key.js";
import { loadConfig } from "../../proxy/server/config.js";
import type { Policy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { tempDir } from "../support/wait.js";
import { servedPolicy } from "./harness.js";

/** serve (dev evidence, clientAttestation required, `extraYaml` added) before a recording HTTP upstream, and a client enclave identity. */
interface Mutual {
  running: RunningServer;
  upstream: Upstream;
  seen: IncomingHttpHeaders[];
  client: MintedIdentity;
  clientMrenclave: string;
  policy: Policy;
  base: string;
  dir: string;
}

async function startMutual(extraYaml = ""): Promise<Mutual> {
  const dir = tempDir("amcp-mutual-e2e-");
  const devDir = join(dir, "dev");
  // The client enclave: same dev PKI, another measurement.
  const clientProvider = await DevProvider.open({ dir: devDir, mrenclave: new Uint8Array(32).fill(0xc1), warn: () => {} });
  const client = await mintIdentity({ provider: clientProvider, keyType: "P-256" });
  const cv = await verifyRaTlsCertificate(client.certDer, { trustRoots: [clientProvider.rootPem] });
  assert.ok(cv.ok && cv.quote?.teeType === "SGX", JSON.stringify(cv.failed));
  const clientMrenclave = cv.quote.mrenclave;
  assert.equal(clientMrenclave, "c1".repeat(32));

  const seen: IncomingHttpHeaders[] = [];
  const upstream = await startUpstream((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on("end", () => res.end('{"ok":true}'));
  });
  const clientPolicy = join(dir, "clients.yaml");
  writeFileSync(clientPolicy, `trustRoots: ["${join(devDir, "root.pem")}"]\nmeasurements: [{ mrenclave: "${clientMrenclave}" }]\nallowDebug: true\ntcb: { require: false }\nfreshness: certificate\n`);
  const file = join(dir, "serve.yaml");
  writeFileSync(
    file,
    `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nupstream: { url: "http://127.0.0.1:${upstream.port}" }\nclientAttestation: { mode: required, policy: "${clientPolicy}" }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n${extraYaml}`,
  );
  const serverProvider = await DevProvider.open({ dir: devDir, warn: () => {} });
  const running = await startServer(await loadConfig({ file }), serverProvider, pino({ level: "silent" }));
  const policy = await servedPolicy(running.address.port, serverProvider.rootPem, dir);

  return { running, upstream, seen, client, clientMrenclave, policy, base: `https://127.0.0.1:${running.address.port}`, dir };
}

describe("mutual attestation end to end: attestedFetch with a client identity against serve (required)", { timeout: 60_000 }, () => {
  let m: Mutual;
  before(async () => {
    m = await startMutual();
  });
  after(async () => {
    await m?.running.close();
    await m?.upstream.close();
  });

  it("each side verifies the other; the upstream sees the client's measurement and verdict", async () => {
    const f = attestedFetch({ policy: m.policy, clientIdentity: { keyPem: m.client.keyPem, certPem: m.client.certPem } });
    try {
      const res = await f(`${m.base}/mcp`, { method: "POST", body: "{}", headers: { "content-type": "application/json", "X-Attested-Client-Mrenclave": "ff".repeat(32) } });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ok: true });
    } finally {
      await f.close();
    }
    assert.equal(m.seen.length, 1);
    assert.equal(m.seen[0]!["x-attested-client-verdict"], "trusted");
    assert.equal(m.seen[0]!["x-attested-client-mrenclave"], m.clientMrenclave, "the forged client-sent value never arrives");
    assert.match(String(m.seen[0]!["x-attested-client-mrsigner"]), /^[0-9a-f]{64}$/);
  });

  it("the same client without its identity is refused, and the upstream receives nothing", async () => {
    const before = m.seen.length;
    const f = attestedFetch({ policy: m.policy });
    try {
      const res = await f(`${m.base}/mcp`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } }).catch((e: Error) => e);
      // The server's certificate verified; its fresh-evidence request is where the server's own
      // refusal shows, and the verdict says why.
      const rejection = rejectionOf(res);
      assert.ok(rejection, `a rejection, got ${String(res)}`);
      assert.equal(rejection.verdict.failed?.check, "freshness.response");
      assert.match(rejection.message, /answered 403: .*client attestation required: present an RA-TLS client certificate/);
    } finally {
      await f.close();
    }
    assert.equal(m.seen.length, before);
  });
});

describe("mutual attestation and bearer keys together: both must pass", { timeout: 60_000 }, () => {
  let m: Mutual;
  let key: string;
  before(async () => {
    const keysFile = join(tempDir("amcp-mutual-keys-"), "keys.txt");
    key = newKey("erin", keysFile);
    m = await startMutual(`auth: { mode: bearer, bearer: { keysFile: ${JSON.stringify(keysFile)} } }\n`);
  });
  after(async () => {
    await m?.running.close();
    await m?.upstream.close();
  });

  const post = async (identity: boolean, authorization: string | null): Promise<Response | Error> => {
    const f = attestedFetch({ policy: m.policy, ...(identity ? { clientIdentity: { keyPem: m.client.keyPem, certPem: m.client.certPem } } : {}) });
    try {
      const headers: Record<string, string> = { "content-type": "application/json", ...(authorization === null ? {} : { authorization }) };
      const res = await f(`${m.base}/mcp`, { method: "POST", body: "{}", headers }).catch((e: Error) => e);
      if (!(res instanceof Error)) await res.arrayBuffer();
      return res;
    } finally {
      await f.close();
    }
  };

  it("an attested client without a key, or with a wrong one, gets 401; a key without the client's attestation is refused; the upstream receives nothing", async () => {
    const none = await post(true, null);
    assert.ok(!(none instanceof Error) && none.status === 401 && none.headers.get("www-authenticate") === "Bearer", String(none));
    const wrong = await post(true, `Bearer ${key}x`);
    assert.ok(!(wrong instanceof Error) && wrong.status === 401, String(wrong));
    const unattested = await post(false, `Bearer ${key}`);
    assert.equal(rejectionOf(unattested)?.verdict.failed?.check, "freshness.response", String(unattested));
    assert.equal(m.seen.length, 0);
  });

  it("both: the upstream sees the client's measurement and the key's name", async () => {
    const ok = await post(true, `Bearer ${key}`);
    assert.ok(!(ok instanceof Error) && ok.status === 200, String(ok));
    assert.equal(m.seen.length, 1);
    assert.equal(m.seen[0]!["x-attested-client-mrenclave"], m.clientMrenclave);
    assert.equal(m.seen[0]!["x-authenticated-subject"], "erin");
    assert.equal(m.seen[0]!.authorization, undefined);
  });
});
