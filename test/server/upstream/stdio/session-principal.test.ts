/**
 * Under mutual attestation a stdio session is its opener's: another attested client (another
 * MRENCLAVE, trusted by the same policy) holding the id gets 404 as for an unknown session, and
 * nothing of its request reaches the child.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../../../proxy/attest/dev/provider.js";
import { mintIdentity } from "../../../../proxy/attest/identity.js";
import { attestedFetch, type AttestedFetch } from "../../../../proxy/client/connector.js";
import { loadConfig } from "../../../../proxy/server/config.js";
import { startServer, type RunningServer } from "../../../../proxy/server/listener.js";
import { SERVER_JS } from "../../../support/mcp2/spawn.js";
import { tempDir } from "../../../support/wait.js";
import { servedPolicy } from "../../../client/harness.js";

const HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" };

describe("stdio sessions belong to the attested client that opened them", { timeout: 60_000 }, () => {
  let running: RunningServer;
  let alice: AttestedFetch;
  let mallory: AttestedFetch;
  let base: string;

  before(async () => {
    const dir = tempDir("amcp-sess-principal-");
    const devDir = join(dir, "dev");
    const ids = [];
    for (const fill of [0xa1, 0xb2]) {
      const p = await DevProvider.open({ dir: devDir, mrenclave: new Uint8Array(32).fill(fill), warn: () => {} });
      ids.push(await mintIdentity({ provider: p, keyType: "P-256" }));
    }
    const clientPolicy = join(dir, "clients.yaml");
    writeFileSync(
      clientPolicy,
      `trustRoots: ["${join(devDir, "root.pem")}"]\nmeasurements: [{ mrenclave: "${"a1".repeat(32)}" }, { mrenclave: "${"b2".repeat(32)}" }]\nallowDebug: true\ntcb: { require: false }\nfreshness: certificate\n`,
    );
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nupstream: { command: ["${process.execPath}", "${SERVER_JS}", "--stdio", "--era", "legacy"] }\nclientAttestation: { mode: required, policy: "${clientPolicy}" }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n`,
    );
    const serverProvider = await DevProvider.open({ dir: devDir, warn: () => {} });
    running = await startServer(await loadConfig({ file }), serverProvider, pino({ level: "silent" }));
    base = `https://127.0.0.1:${running.address.port}`;
    const policy = await servedPolicy(running.address.port, serverProvider.rootPem, dir);

    alice = attestedFetch({ policy, clientIdentity: { keyPem: ids[0]!.keyPem, certPem: ids[0]!.certPem } });
    mallory = attestedFetch({ policy, clientIdentity: { keyPem: ids[1]!.keyPem, certPem: ids[1]!.certPem } });
  });
  after(async () => {
    await alice?.close();
    await mallory?.close();
    await running?.close();
  });

  const post = (f: AttestedFetch, body: unknown, sid?: string) => f(`${base}/mcp`, { method: "POST", headers: { ...HEADERS, ...(sid ? { "mcp-session-id": sid } : {}) }, body: JSON.stringify(body) });
  const touch = (id: number) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "touch", arguments: {} } });

  it("another attested client using the id gets 404 and the child never sees its request", async () => {
    const init = await post(alice, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "alice", version: "1" } } });
    assert.equal(init.status, 200);
    const sid = init.headers.get("mcp-session-id")!;
    await init.text();
    assert.equal((await post(alice, { jsonrpc: "2.0", method: "notifications/initialized" }, sid)).status, 202);

    for (const r of [
      await post(mallory, touch(7), sid),
      await mallory(`${base}/mcp`, { headers: { ...HEADERS, "mcp-session-id": sid } }),
      await mallory(`${base}/mcp`, { method: "DELETE", headers: { ...HEADERS, "mcp-session-id": sid } }),
    ]) {
      assert.equal(r.status, 404);
      assert.match(await r.text(), /Session not found/);
    }
    // The child counts touches: Mallory's never arrived, Alice's is the first.
    const mine = await post(alice, touch(2), sid);
    assert.equal(mine.status, 200);
    assert.match(await mine.text(), /touched 1\b/);
  });
});
