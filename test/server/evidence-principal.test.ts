/**
 * Under mutual attestation a client is its certificate, not its address: two attested clients on
 * the same address (127.0.0.1) each get their own share of fresh evidence, and a client without a
 * certificate on that address has the address's share, untouched by theirs. Real TLS against the
 * real listener (clientAttestation: optional).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { loadConfig } from "../../proxy/server/config.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { tempDir, within } from "../support/wait.js";

describe("fresh-evidence shares under mutual attestation", { timeout: 60_000 }, () => {
  let running: RunningServer;
  let upstream: Upstream;
  const clients: MintedIdentity[] = [];

  before(async () => {
    const dir = tempDir("amcp-principal-");
    const devDir = join(dir, "dev");
    const clientProvider = await DevProvider.open({ dir: devDir, mrenclave: new Uint8Array(32).fill(0xc2), warn: () => {} });
    for (let i = 0; i < 2; i++) clients.push(await mintIdentity({ provider: clientProvider, keyType: "P-256" }));
    upstream = await startUpstream((_req, res) => res.end());
    const clientPolicy = join(dir, "clients.yaml");
    writeFileSync(
      clientPolicy,
      `trustRoots: ["${join(devDir, "root.pem")}"]\nmeasurements: [{ mrenclave: "${"c2".repeat(32)}" }]\nallowDebug: true\ntcb: { require: false }\nfreshness: certificate\n`,
    );
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nupstream: { url: "http://127.0.0.1:${upstream.port}" }\nclientAttestation: { mode: optional, policy: "${clientPolicy}" }\nattestationEndpoint: { quotesPerMinute: 100, quotesPerClientPerMinute: 2 }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n`,
    );
    running = await startServer(await loadConfig({ file }), await DevProvider.open({ dir: devDir, warn: () => {} }), pino({ level: "silent" }));
  });
  after(async () => {
    await running?.close();
    await upstream?.close();
  });

  /** GET /.well-known/attestation on a new connection, with this identity or none: the status. */
  const fresh = (who: MintedIdentity | null): Promise<number> =>
    within(
      new Promise((resolve) => {
        let got = "";
        const s = tlsConnect({ host: "127.0.0.1", port: running.address.port, rejectUnauthorized: false, ...(who ? { cert: who.certPem, key: who.keyPem } : {}) }, () =>
          s.write(`GET /.well-known/attestation?nonce=${randomBytes(8).toString("hex")} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
        );
        s.on("data", (d: Buffer) => (got += d.toString("latin1")));
        s.on("error", () => {});
        s.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)));
      }),
      15_000,
      "fresh evidence",
    );

  it("each trusted certificate has its own share; the address's share is the anonymous client's", async () => {
    const [a, b] = clients as [MintedIdentity, MintedIdentity];
    assert.deepEqual([await fresh(a), await fresh(a), await fresh(a)], [200, 200, 429]);
    assert.deepEqual([await fresh(b), await fresh(b), await fresh(b)], [200, 200, 429]);
    assert.deepEqual([await fresh(null), await fresh(null), await fresh(null)], [200, 200, 429]);
  });
});
