/**
 * Batched fresh evidence: many requests on separate connections arriving while a quote is being
 * made are covered by the next quote, one quote per batch (the provider's calls counted), at most
 * `maxBatch` leaves each; every client's own proof verifies with the client's own checks, and no
 * answer carries any client's nonce or exporter. A lone request is a batch of one, quoted at once.
 * And the shares: a client is charged once per quote its requests take part in, so one client's
 * burst is served, a near token is waited for, and its share still bounds the quotes it joins.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { paced } from "../../proxy/attest/paced.js";
import type { AttestationProvider } from "../../proxy/attest/provider.js";
import { checkFreshEvidence, freshInputs, requestEvidence } from "../../proxy/client/freshness.js";
import { decodeEvidence, encodeEvidence } from "../../proxy/core/protocol.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { type BatchAnswer, type BatchRefusal, EvidenceBatcher } from "../../proxy/server/evidence-batch.js";
import { RateShares } from "../../proxy/server/shares.js";
import { createAttestationEndpoint } from "../../proxy/server/wellknown.js";
import { tempDir, waitFor, within } from "../support/wait.js";

let dev: DevProvider;
let id: MintedIdentity;
before(async () => {
  dev = await DevProvider.open({ dir: join(tempDir("amcp-wkb-"), "dev"), warn: () => {} });
  id = await mintIdentity({ provider: dev });
});

/**
 * The dev provider behind a gate the test opens, paced at 25 ms: `calls` counts the quotes asked
 * of the device, `maxInFlight` how many were ever asked at once.
 */
function gatedProvider() {
  let release: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();
  const state = { calls: 0, inFlight: 0, maxInFlight: 0 };
  const device: AttestationProvider = {
    name: "dev",
    dev: true,
    quote: async (rd) => {
      state.calls++;
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      try {
        await gate;
        return await dev.quote(rd);
      } finally {
        state.inFlight--;
      }
    },
  };
  return {
    provider: paced(device, 25),
    state,
    close: () => {
      gate = new Promise((r) => (release = r));
    },
    open: () => release(),
  };
}

describe("batched fresh evidence over TLS", { timeout: 30_000 }, () => {
  const g = gatedProvider();
  let server: Server;
  let port = 0;
  let asked = 0;
  const sockets: TLSSocket[] = [];

  before(async () => {
    const handler = createAttestationEndpoint({
      provider: g.provider,
      quotesPerMinute: 100_000,
      quotesPerClientPerMinute: 100_000,
      maxBatch: 16,
      clientOf: () => (asked++, "one-client"),
      log: pino({ level: "silent" }),
    });
    server = createServer({ key: id.keyPem, cert: id.certPem }, handler);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const open = (): Promise<TLSSocket> =>
    within(
      new Promise<TLSSocket>((resolve, reject) => {
        const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => resolve(s));
        sockets.push(s);
        s.once("error", reject);
      }),
      5000,
      "TLS connection",
    );

  async function expectation() {
    const v = await verifyRaTlsCertificate(id.certDer, { trustRoots: [dev.rootPem] });
    assert.ok(v.ok);
    return { peerCertDer: id.certDer, certQuote: v.quote, certPlatform: v.platform, certDev: v.dev, trustRoots: [dev.rootPem] };
  }

  it("a lone request when idle is a batch of one, quoted at once", async () => {
    const before = g.state.calls;
    const s = await open();
    const { nonce, exporter } = freshInputs(s, "exporter");
    const res = await within(requestEvidence(s, `127.0.0.1:${port}`, "exporter", nonce), 5000, "lone request");
    const doc = decodeEvidence(res.body.toString());
    assert.ok(doc.ok);
    assert.deepEqual([doc.value.proof.index, doc.value.proof.size, doc.value.proof.path.length], [0, 1, 0]);
    assert.equal(g.state.calls, before + 1);
    const out = await checkFreshEvidence(res, { ...(await expectation()), mode: "exporter", nonce, exporter });
    assert.equal(out.result.ok, true, out.result.detail);
  });

  it("40 requests on separate connections during a quote: the next quotes cover them (16 at most each), every proof verifies, none sees another's nonce or exporter", async () => {
    const n = 40;
    const exp = await expectation();
    const conns = await Promise.all(Array.from({ length: n + 1 }, open));
    const inputs = conns.map((s, i) => freshInputs(s, i === 0 ? "nonce" : "exporter"));
    const calls0 = g.state.calls;
    g.close();
    asked = 0;
    // The first one opens a quote, which the gate holds until all the others have joined.
    const first = requestEvidence(conns[0]!, `127.0.0.1:${port}`, "nonce", inputs[0]!.nonce);
    await waitFor(() => asked === 1, 5000, "the first request at the endpoint");
    const rest = conns.slice(1).map((s, i) => requestEvidence(s, `127.0.0.1:${port}`, "exporter", inputs[i + 1]!.nonce));
    await waitFor(() => asked === n + 1, 10_000, "every request at the endpoint");
    g.open();
    const answers = await within(Promise.all([first, ...rest]), 10_000, "every answer");

    // One quote for the first request, then ceil(40 / 16) = 3 for the others, one at a time.
    assert.equal(g.state.calls - calls0, 1 + Math.ceil(n / 16));
    assert.equal(g.state.maxInFlight, 1);
    const docs = answers.map((a) => {
      assert.equal(a.status, 200, a.body.toString());
      const d = decodeEvidence(a.body.toString());
      assert.ok(d.ok);
      return d.value;
    });
    // Answers of one batch share their encoded head: each is still exactly its own whole document.
    for (const [i, a] of answers.entries()) assert.equal(a.body.toString(), encodeEvidence(docs[i]!), `answer ${i}`);
    const byQuote = new Map<string, number[]>();
    for (const [i, d] of docs.entries()) {
      const k = Buffer.from(d.quote).toString("base64");
      byQuote.set(k, [...(byQuote.get(k) ?? []), i]);
    }
    assert.equal(byQuote.size, g.state.calls - calls0, "each quote made is one batch");
    assert.deepEqual(
      [...byQuote.values()].map((members) => [members.length, ...members.map((i) => docs[i]!.proof.size)]).map((x) => [x[0], new Set(x.slice(1)).size === 1 && x[1] === x[0]]),
      [
        [1, true],
        [16, true],
        [16, true],
        [8, true],
      ],
    );
    for (const [i, a] of answers.entries()) {
      const mode = i === 0 ? "nonce" : "exporter";
      const out = await checkFreshEvidence(a, { ...exp, mode, nonce: inputs[i]!.nonce, exporter: inputs[i]!.exporter });
      assert.equal(out.result.ok, true, `client ${i}: ${out.result.detail}`);
      // Copied to another client of the same batch, it fails at the proof.
      const j = i === 0 ? null : i === n ? 1 : i + 1;
      if (j !== null) {
        const copied = await checkFreshEvidence(a, { ...exp, mode: "exporter", nonce: inputs[j]!.nonce, exporter: inputs[j]!.exporter });
        assert.match(copied.result.detail, /^freshness\.proof: /);
      }
    }
    const secrets = inputs.flatMap(({ nonce, exporter }) => [nonce, ...(exporter ? [exporter] : [])]).flatMap((b) => [Buffer.from(b).toString("hex"), Buffer.from(b).toString("base64")]);
    for (const a of answers) {
      const text = a.body.toString();
      assert.deepEqual(
        secrets.filter((x) => text.includes(x)),
        [],
      );
    }
  });
});

describe("batched fresh evidence: who is charged", () => {
  function setup(share: number, cap = 1000) {
    const g = gatedProvider();
    g.close();
    const clock = { t: 0 };
    const shares = new RateShares(cap, share, 100, 0);
    const batcher = new EvidenceBatcher({ provider: g.provider, shares, maxBatch: 8, now: () => clock.t });
    const leaf = (i: number) => new Uint8Array(32).fill(i);
    return { g, batcher, leaf, shares };
  }
  const answered = (ps: Promise<BatchAnswer | BatchRefusal>[]) => within(Promise.all(ps), 5000, "answers");

  it("a client's burst is charged once per quote it takes part in; its share bounds those quotes", async () => {
    const { g, batcher, leaf } = setup(2);
    const first = batcher.join(id.certDer, leaf(0), "a"); // quoted at once: a's first token
    // While it is made, 8 of a's requests fill the next batch (a's second token, spent when it starts)…
    const burst = Array.from({ length: 8 }, (_, i) => batcher.join(id.certDer, leaf(i + 1), "a"));
    // …a ninth waits for a third quote, which a's share (2 a minute) cannot pay for: 429 then.
    const ninth = batcher.join(id.certDer, leaf(9), "a");
    // b's request shares that third batch and pays for it with its own share.
    const other = batcher.join(id.certDer, leaf(10), "b");
    g.open();
    const got = await answered([first, ...burst, ninth, other]);
    assert.deepEqual(
      got.map((r) => (r.ok ? r.proof.size : r.status)),
      [1, 8, 8, 8, 8, 8, 8, 8, 8, 429, 1],
    );
    assert.deepEqual(got[9], { ok: false, status: 429, retryAfter: 30, scope: "client" });
    assert.equal(g.state.calls, 3);
    assert.equal(batcher.quotes, 3);
  });

  it("a client whose next token is near waits for it instead of being refused", async () => {
    const g = gatedProvider();
    const shares = new RateShares(1000, 120);
    for (let i = 0; i < 120; i++) shares.spendClient("a");
    const batcher = new EvidenceBatcher({ provider: g.provider, shares });
    const t0 = performance.now();
    const got = await within(Promise.all([batcher.join(id.certDer, new Uint8Array(32), "a"), batcher.join(id.certDer, new Uint8Array(32).fill(1), "a")]), 5000, "answers");
    assert.deepEqual(
      got.map((r) => (r.ok ? r.proof.size : r.status)),
      [2, 2],
    );
    assert.equal(g.state.calls, 1);
    // Half a second for a token at 120 a minute (a lower bound: 10 ms of timer slack).
    assert.ok(performance.now() - t0 >= 490, `${performance.now() - t0} ms`);
  });

  it("joining costs the joiner's share only, never another's; the cap counts quotes, not requests", async () => {
    const { g, batcher, leaf } = setup(1, 2);
    const a = batcher.join(id.certDer, leaf(0), "a"); // quoted at once: a 1/1, cap 1/2
    const others = ["b", "c", "d", "d"].map((c, i) => batcher.join(id.certDer, leaf(i + 1), c)); // one batch
    assert.deepEqual(await batcher.join(id.certDer, leaf(5), "a"), { ok: false, status: 429, retryAfter: 60, scope: "client" });
    g.open();
    const got = await answered([a, ...others]);
    assert.deepEqual(
      got.map((r) => (r.ok ? r.proof.size : r.status)),
      [1, 4, 4, 4, 4],
    );
    assert.equal(g.state.calls, 2);
    // Two quotes made: the cap (2 a minute) is spent, whoever asks next, with its share whole.
    assert.deepEqual(await batcher.join(id.certDer, leaf(6), "e"), { ok: false, status: 503, retryAfter: 30, scope: "global" });
  });

  it("another certificate's requests get their own batch (a connection gets its own certificate's pubkey-hash)", async () => {
    const { g, batcher, leaf } = setup(100);
    const other = await mintIdentity({ provider: dev });
    const all = [batcher.join(id.certDer, leaf(0), "a"), batcher.join(other.certDer, leaf(1), "a"), batcher.join(id.certDer, leaf(2), "a")];
    g.open();
    const [x, y, z] = await answered(all);
    assert.ok(x?.ok && y?.ok && z?.ok);
    assert.notDeepEqual(Buffer.from(x.claims), Buffer.from(y.claims));
    assert.notDeepEqual(Buffer.from(y.claims), Buffer.from(z.claims));
    assert.equal(g.state.calls, 3);
  });

  it("a failed quote fails every request of its batch, and the next batch is quoted", async () => {
    let calls = 0;
    const device: AttestationProvider = { name: "dev", dev: true, quote: async (rd) => (calls++ === 0 ? Promise.reject(new Error("device busy")) : dev.quote(rd)) };
    const batcher = new EvidenceBatcher({ provider: paced(device, 25), shares: new RateShares(100, 100) });
    const a = batcher.join(id.certDer, new Uint8Array(32), "a");
    const b = batcher.join(id.certDer, new Uint8Array(32).fill(1), "a");
    await assert.rejects(a, /device busy/);
    const r = await b;
    assert.ok(r.ok);
    assert.equal(r.proof.size, 1);
  });
});
