/** Identity lifecycle: mint, rotate at 80 %, keep serving through failures, swap without dropping connections. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type TLSSocket } from "node:tls";
import { before, describe, it } from "node:test";
import { createHash } from "node:crypto";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { GramineProvider } from "../../proxy/attest/gramine.js";
import { Identity, mintIdentity } from "../../proxy/attest/identity.js";
import type { AttestationProvider } from "../../proxy/attest/provider.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { tempDir, within } from "../support/wait.js";

let dev: DevProvider;
before(async () => {
  dev = await DevProvider.open({ dir: join(tempDir("amcp-id-"), "dev"), warn: () => {} });
});

/** A provider that fails while `down` is set. */
function flaky(inner: AttestationProvider) {
  const state = { down: false, calls: 0 };
  const p: AttestationProvider = {
    name: inner.name,
    dev: inner.dev,
    quote: async (rd) => {
      state.calls++;
      if (state.down) throw new Error("quote service unavailable");
      return inner.quote(rd);
    },
  };
  return { p, state };
}

describe("identity", { timeout: 30_000 }, () => {
  it("start fails when the provider cannot attest (no fallback)", async () => {
    await assert.rejects((async () => Identity.start({ provider: await GramineProvider.open(join(tmpdir(), "amcp-none")) }))(), { code: "GRAMINE_UNAVAILABLE" });
    const { p, state } = flaky(dev);
    state.down = true;
    await assert.rejects(Identity.start({ provider: p }), /quote service unavailable/);
  });

  it("mintIdentity refuses a provider's quote over other report data, or no quote at all (QUOTE_UNBOUND)", async () => {
    // A library call, no listener: the check belongs to minting itself.
    for (const [what, quote, message] of [
      ["a quote over other report data", (rd: Uint8Array) => dev.quote(rd.map((b) => b ^ 0xff)), /a quote over other report data/],
      ["bytes that are no quote", async () => new Uint8Array(64).fill(7), /returned no usable quote/],
    ] as const) {
      let calls = 0;
      const p: AttestationProvider = {
        name: dev.name,
        dev: dev.dev,
        quote: async (rd) => {
          calls++;
          return quote(rd);
        },
      };
      await assert.rejects(mintIdentity({ provider: p }), { name: "AttestationError", code: "QUOTE_UNBOUND", message }, what);
      assert.equal(calls, 1, `${what}: refused at the first quote`);
    }
  });

  it("re-mints at 80 % of the lifetime, and the new certificate verifies", async () => {
    const id = await Identity.start({ provider: dev, lifetimeMs: 1500, backdateMs: 0 });
    try {
      const first = id.current;
      const t0 = Date.now();
      const [next] = (await within(once(id, "rotated"), 5000, "rotation")) as [typeof first];
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= 1000, `rotated after ${elapsed} ms, before 80% of the lifetime`);
      assert.notEqual(next.fingerprint, first.fingerprint);
      assert.equal(id.current, next);
      const v = await verifyRaTlsCertificate(next.certDer, { trustRoots: [dev.rootPem] });
      assert.equal(v.ok, true, JSON.stringify(v.failed));
    } finally {
      id.stop();
    }
  });

  it("a failed rotation keeps the valid certificate, marks it unhealthy, retries, and recovers", async () => {
    const { p, state } = flaky(dev);
    const id = await Identity.start({ provider: p, lifetimeMs: 60_000, backdateMs: 0, retryMs: 50 });
    try {
      const first = id.current;
      state.down = true;
      const failed = once(id, "rotation-failed");
      await assert.rejects(id.rotate(), /quote service unavailable/);
      const [err, kept] = (await failed) as [Error, typeof first];
      assert.match(err.message, /unavailable/);
      assert.equal(kept, first);
      assert.equal(id.current, first);
      assert.equal(id.healthy, false);
      const callsBefore = state.calls;
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(state.calls > callsBefore, "retried on its own");
      state.down = false;
      const [next] = (await within(once(id, "rotated"), 5000, "recovery")) as [typeof first];
      assert.notEqual(next.fingerprint, first.fingerprint);
      assert.equal(id.healthy, true);
    } finally {
      id.stop();
    }
  });

  it("an expired certificate is reported once and the identity is unhealthy", async () => {
    let now = Date.now();
    const { p, state } = flaky(dev);
    const id = await Identity.start({ provider: p, lifetimeMs: 1000, backdateMs: 0, retryMs: 20, now: () => now });
    try {
      state.down = true;
      now += 2000;
      const expired = once(id, "expired");
      await id.rotate().catch(() => {});
      await within(expired, 5000, "expiry report");
      assert.equal(id.healthy, false);
    } finally {
      id.stop();
    }
  });

  it("swaps the TLS certificate for new handshakes without dropping a live connection", async () => {
    const id = await Identity.start({ provider: dev, lifetimeMs: 3600_000 });
    const server = createServer({ ...id.secureContextOptions(), minVersion: "TLSv1.3" }, (s) => s.pipe(s));
    id.on("rotated", () => server.setSecureContext(id.secureContextOptions()));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as { port: number }).port;
    const open = async () => {
      const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
      await once(s, "secureConnect");
      return s;
    };
    const echo = async (s: TLSSocket, text: string) => {
      s.write(text);
      const [chunk] = (await once(s, "data")) as [Buffer];
      return chunk.toString();
    };
    const fp = (s: TLSSocket) => createHash("sha256").update(s.getPeerCertificate().raw).digest("hex");
    try {
      const a = await open();
      assert.equal(fp(a), id.current.fingerprint);
      assert.equal(await echo(a, "before"), "before");
      const old = id.current.fingerprint;
      await id.rotate();
      assert.equal(await echo(a, "after"), "after", "the live connection survives the swap");
      const b = await open();
      assert.equal(fp(b), id.current.fingerprint);
      assert.notEqual(fp(b), old);
      a.destroy();
      b.destroy();
    } finally {
      id.stop();
      server.close();
    }
  });

  it("the minted key is only in memory (no file is written by minting)", async () => {
    const m = await mintIdentity({ provider: dev });
    assert.match(m.keyPem, /BEGIN PRIVATE KEY/);
    assert.equal(typeof m.key, "object");
  });
});
