/** The connector presents its own RA-TLS identity when given one (mutual attestation's client half). */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { verifyRemote } from "../../proxy/client/connector.js";
import { buildPolicy, type Policy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { tempDir } from "../support/wait.js";

describe("client identity", { timeout: 20_000 }, () => {
  let server: Server;
  let client: MintedIdentity;
  let policy: Policy;
  const peers: (Buffer | null)[] = [];

  before(async () => {
    const dir = tempDir("amcp-mutual-");
    const provider = await DevProvider.open({ dir: join(dir, "dev"), warn: () => {} });
    const serverId = await mintIdentity({ provider });
    client = await mintIdentity({ provider, keyType: "P-256" });
    const v = await verifyRaTlsCertificate(serverId.certDer, { trustRoots: [provider.rootPem] });
    assert.ok(v.quote?.teeType === "SGX");
    policy = await buildPolicy(
      { trustRoots: ["dev/root.pem"], measurements: [{ mrenclave: v.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "certificate" },
      "(test)",
      dir,
      (p) => readFile(p, "utf8"),
    );
    server = createServer({ key: serverId.keyPem, cert: serverId.certPem, requestCert: true, rejectUnauthorized: false }, (socket: TLSSocket) => {
      const raw = socket.getPeerCertificate().raw;
      peers.push(raw ?? null);
      socket.on("error", () => {});
      socket.resume();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  /** TLS 1.3: the server finishes its side after the client's; wait (bounded) for it. */
  const serverSaw = async (n: number): Promise<void> => {
    const deadline = Date.now() + 3000;
    while (peers.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(peers.length, n, "the server completed the handshake");
  };
  const url = (): string => `https://127.0.0.1:${(server.address() as { port: number }).port}/`;

  it("with clientIdentity, the server sees exactly that certificate", async () => {
    const n = peers.length;
    const v = await verifyRemote(url(), { policy, clientIdentity: { keyPem: client.keyPem, certPem: client.certPem } });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    await serverSaw(n + 1);
    assert.ok(peers.at(-1), "the server got a client certificate");
    assert.deepEqual(new Uint8Array(peers.at(-1)!), client.certDer);
  });

  it("without it, the server sees no client certificate", async () => {
    const n = peers.length;
    const v = await verifyRemote(url(), { policy });
    assert.equal(v.ok, true);
    await serverSaw(n + 1);
    assert.equal(peers.at(-1), null);
  });
});
