/** The attestation endpoint's limits: the per-process quote rate limit, the per-connection cache, provider failure. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent as HttpsAgent, createServer, request } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity } from "../../proxy/attest/identity.js";
import type { AttestationProvider } from "../../proxy/attest/provider.js";
import { createAttestationEndpoint } from "../../proxy/server/wellknown.js";
import { tempDir } from "../support/wait.js";

let dev: DevProvider;
before(async () => {
  dev = await DevProvider.open({ dir: join(tempDir("amcp-wk-"), "dev"), warn: () => {} });
});

async function serveEndpoint(provider: AttestationProvider, quotesPerMinute: number) {
  const id = await mintIdentity({ provider: dev });
  let quotes = 0;
  const counting: AttestationProvider = { name: provider.name, dev: provider.dev, quote: (rd) => (quotes++, provider.quote(rd)) };
  const handler = createAttestationEndpoint({ provider: counting, quotesPerMinute, log: pino({ level: "silent" }) });
  const server = createServer({ key: id.keyPem, cert: id.certPem }, handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const agent = new HttpsAgent({ rejectUnauthorized: false, keepAlive: true, maxSockets: 1 });
  const get = (nonce: string) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      request({ host: "127.0.0.1", port, path: `/.well-known/attestation?nonce=${nonce}`, agent }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      })
        .on("error", reject)
        .end();
    });
  return { get, quotes: () => quotes, close: () => (agent.destroy(), new Promise((r) => server.close(r))) };
}

describe("attestation endpoint limits", () => {
  let closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of closers) await c();
    closers = [];
  });

  it("past the per-minute limit: 429 with Retry-After, and no quote is produced", async () => {
    const e = await serveEndpoint(dev, 2);
    closers.push(e.close);
    assert.equal((await e.get("01")).status, 200);
    assert.equal((await e.get("02")).status, 200);
    const third = await e.get("03");
    assert.equal(third.status, 429);
    assert.ok(Number(third.headers["retry-after"]) >= 1);
    assert.match(third.body, /rate-limited to 2 per minute/);
    assert.equal(e.quotes(), 2);
  });

  it("the same nonce again on the same connection is answered from the cache, without a new quote", async () => {
    const e = await serveEndpoint(dev, 1);
    closers.push(e.close);
    const a = await e.get("aa");
    const b = await e.get("aa");
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(b.body, a.body);
    assert.equal(e.quotes(), 1);
  });

  it("a provider that fails: 503 with a reason, nothing else leaks", async () => {
    const broken: AttestationProvider = { name: "gramine", dev: false, quote: async () => Promise.reject(new Error("/dev/attestation/quote: EIO")) };
    const e = await serveEndpoint(broken, 10);
    closers.push(e.close);
    const r = await e.get("0102");
    assert.equal(r.status, 503);
    assert.doesNotMatch(r.body, /EIO|dev\/attestation/);
  });
});
