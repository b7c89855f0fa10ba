/**
 * Mutual attestation through `serve` on loopback: the listener asks for a client certificate,
 * appraises its RA-TLS evidence against the client policy before routing anything, refuses in
 * required mode, and tells an HTTP upstream the verdict in X-Attested-Client-* headers that a
 * client cannot forge.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { pino, type Logger } from "pino";
import { Agent, request } from "undici";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { ConfigError, loadConfig } from "../../proxy/server/config.js";
import { loadPolicy, type Policy } from "../../proxy/evidence/policy.js";
import { ClientAppraiser, ClientPolicyError, createClientGate, type ClientVerdict } from "../../proxy/server/client-attestation.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { servedCertificate } from "../support/tls-client.js";
import { LOOPBACK, portOf, shut, startUpstream, type Upstream } from "../support/upstream.js";
import { CLI } from "../support/vectors.js";
import { sleep, tempDir, within } from "../support/wait.js";

const silent = pino({ level: "silent" });
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

/** An HTTP upstream that records every request it receives. */
async function recordingUpstream(): Promise<Upstream & { seen: Seen[] }> {
  const seen: Seen[] = [];
  const up = await startUpstream((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    req.resume();
    req.on("end", () => res.end("upstream ok"));
  });
  up.server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    socket.end("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  });
  return Object.assign(up, { seen });
}

/** Log lines captured as objects. */
function capturingLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

function writePolicy(dir: string, body: string): string {
  const p = join(dir, `policy-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(p, body);
  return p;
}

interface Clients {
  /** The client's dev PKI root (what the client policy trusts). */
  rootPath: string;
  good: MintedIdentity;
  goodMrenclave: string;
  goodMrsigner: string;
  /** Same dev PKI, a different MRENCLAVE: fails policy.measurement only. */
  wrong: MintedIdentity;
}

async function clientIdentities(): Promise<Clients> {
  const dir = join(tempDir("amcp-mutual-client-"), "dev");
  const goodProvider = await DevProvider.open({ dir, mrenclave: new Uint8Array(32).fill(0xc1), warn: () => {} });
  const wrongProvider = await DevProvider.open({ dir, mrenclave: new Uint8Array(32).fill(0xee), warn: () => {} });
  return {
    rootPath: join(dir, "root.pem"),
    good: await mintIdentity({ provider: goodProvider }),
    goodMrenclave: hex(goodProvider.mrenclave),
    goodMrsigner: hex(goodProvider.mrsigner),
    wrong: await mintIdentity({ provider: wrongProvider }),
  };
}

function clientPolicyYaml(c: Clients, freshness = "certificate"): string {
  return `trustRoots: ["${c.rootPath}"]\nmeasurements: [{ mrenclave: "${c.goodMrenclave}" }]\nallowDebug: true\ntcb: { require: false }\nfreshness: ${freshness}\n`;
}

interface Served {
  running: RunningServer;
  upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  lines: Record<string, unknown>[];
  base: string;
}

async function serveWith(c: Clients, mode: "required" | "optional"): Promise<Served> {
  const dir = tempDir("amcp-mutual-serve-");
  const upstream = await recordingUpstream();
  const policy = writePolicy(dir, clientPolicyYaml(c));
  const file = join(dir, "serve.yaml");
  writeFileSync(
    file,
    `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${join(dir, "dev")}" } }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n` +
      `upstream: { url: "http://127.0.0.1:${upstream.port}" }\nclientAttestation: { mode: ${mode}, policy: "${policy}" }\n`,
  );
  const config = await loadConfig({ file });
  const provider = await DevProvider.open({ dir: join(dir, "dev"), warn: () => {} });
  const { log, lines } = capturingLog();
  const running = await startServer(config, provider, log);
  return { running, upstream, lines, base: `https://127.0.0.1:${running.address.port}` };
}

async function stop(s: Served | undefined): Promise<void> {
  if (!s) return;
  await within(s.running.close(), 5000, "serve close");
  await s.upstream.close();
}

/** A new TLS connection each call (a fresh Agent), presenting `id` when given. */
async function get(base: string, path: string, id: MintedIdentity | null, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const agent = new Agent({ connect: { rejectUnauthorized: false, ...(id ? { cert: id.certPem, key: id.keyPem } : {}) } });
  try {
    const res = await within(request(`${base}${path}`, { dispatcher: agent, headers }), 10_000, `GET ${path}`);
    return { status: res.statusCode, body: await within(res.body.text(), 10_000, "body") };
  } finally {
    await agent.destroy();
  }
}

async function failures(running: RunningServer): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await running.metrics.clientAttestationFailures.get()).values) out[String(v.labels.check)] = v.value;
  return out;
}

describe("mutual attestation: required", { timeout: 60_000 }, () => {
  let c: Clients;
  let s: Served | undefined;
  before(async () => {
    c = await clientIdentities();
    s = await serveWith(c, "required");
  });
  after(() => stop(s));

  it("refuses a plain client (no certificate) with 403, even for /.well-known; the upstream receives nothing", async () => {
    const r = await get(s!.base, "/mcp", null);
    assert.equal(r.status, 403);
    assert.match(r.body, /client attestation required/);
    const wk = await get(s!.base, "/.well-known/attestation?nonce=0011", null);
    assert.equal(wk.status, 403);
    const hz = await get(s!.base, "/healthz", null);
    assert.equal(hz.status, 403);
    assert.equal(s!.upstream.seen.length, 0);
    assert.ok(((await failures(s!.running)).absent ?? 0) >= 3);
  });

  it("closes a plain client that sends nothing, within the grace bound", async () => {
    const sock = connect({ host: LOOPBACK, port: s!.running.address.port, rejectUnauthorized: false });
    sock.on("error", () => {});
    const t0 = Date.now();
    await within(new Promise<void>((r) => sock.once("close", () => r())), 6000, "refused connection closed");
    assert.ok(Date.now() - t0 < 5000);
  });

  it("refuses a client whose RA-TLS certificate fails the policy (wrong measurement); the upstream receives nothing", async () => {
    const before = (await failures(s!.running))["policy.measurement"] ?? 0;
    const r = await get(s!.base, "/mcp", c.wrong, { "X-Attested-Client-Verdict": "trusted" });
    assert.equal(r.status, 403);
    assert.match(r.body, /client attestation failed: policy\.measurement/);
    assert.equal(s!.upstream.seen.length, 0);
    assert.equal((await failures(s!.running))["policy.measurement"], before + 1);
    const line = s!.lines.find((l) => l.msg === "client appraisal" && l.verdict === "rejected");
    assert.ok(line, "one log line for the appraisal");
    assert.equal(line.failed, "policy.measurement");
    assert.equal(line.client, c.wrong.fingerprint.slice(0, 16));
  });

  it("admits a dev-attested client: the upstream sees its measurements, never a forged header", async () => {
    const r = await get(s!.base, "/mcp?x=1", c.good, { "X-Attested-Client-Mrenclave": "f".repeat(64), "X-Attested-Client-Verdict": "forged" });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, "upstream ok");
    assert.equal(s!.upstream.seen.length, 1);
    const h = s!.upstream.seen[0]!.headers;
    assert.equal(h["x-attested-client-verdict"], "trusted");
    assert.equal(h["x-attested-client-mrenclave"], c.goodMrenclave);
    assert.equal(h["x-attested-client-mrsigner"], c.goodMrsigner);
  });

  it("caches the verdict by certificate: a reconnecting client is not appraised again", async () => {
    const appraisals = (): number => s!.lines.filter((l) => l.msg === "client appraisal" && l.client === c.good.fingerprint.slice(0, 16)).length;
    const n = appraisals();
    assert.ok(n >= 1);
    const r = await get(s!.base, "/again", c.good);
    assert.equal(r.status, 200);
    assert.equal(appraisals(), n);
    // No key material in the log lines.
    const text = JSON.stringify(s!.lines);
    assert.equal(text.includes("PRIVATE KEY"), false);
    assert.equal(text.includes(c.good.fingerprint), false, "only a fingerprint prefix is logged");
  });

  it("keeps asking for client certificates after the server identity rotates", async () => {
    const before = s!.running.identity.current.fingerprint;
    await within(s!.running.identity.rotate(), 10_000, "rotate");
    assert.notEqual(s!.running.identity.current.fingerprint, before);
    const served = await servedCertificate("127.0.0.1", s!.running.address.port);
    assert.equal(createHash("sha256").update(served).digest("hex"), s!.running.identity.current.fingerprint, "new connections get the new certificate");
    const seen = s!.upstream.seen.length;
    const ok = await get(s!.base, "/after-rotation", c.good);
    assert.equal(ok.status, 200, "the client certificate was asked for and appraised on the new context");
    assert.equal(s!.upstream.seen.at(-1)!.headers["x-attested-client-verdict"], "trusted");
    const plain = await get(s!.base, "/after-rotation", null);
    assert.equal(plain.status, 403);
    assert.equal(s!.upstream.seen.length, seen + 1);
  });
});

/** An Upgrade request on a raw TLS connection; resolves with the status line. */
function upgrade(port: number, id: MintedIdentity | null): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const sock = connect({ host: LOOPBACK, port, rejectUnauthorized: false, ...(id ? { cert: id.certPem, key: id.keyPem } : {}) }, () => {
        sock.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Attested-Client-Verdict: trusted\r\n\r\n");
      });
      let got = "";
      sock.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        if (got.includes("\r\n")) {
          resolve(got.split("\r\n", 1)[0]!);
          sock.destroy();
        }
      });
      sock.on("error", reject);
      sock.on("close", () => resolve(got.split("\r\n", 1)[0] ?? ""));
    }),
    8000,
    "upgrade",
  );
}

describe("mutual attestation: upgrades (WebSocket) are gated too", { timeout: 60_000 }, () => {
  let c: Clients;
  let s: Served | undefined;
  before(async () => {
    c = await clientIdentities();
    s = await serveWith(c, "required");
  });
  after(() => stop(s));

  it("required: a plain client's Upgrade gets 403 and never reaches the upstream; an attested one is tunnelled with the verdict", async () => {
    assert.match(await upgrade(s!.running.address.port, null), /^HTTP\/1\.1 403/);
    assert.match(await upgrade(s!.running.address.port, c.wrong), /^HTTP\/1\.1 403/);
    assert.equal(s!.upstream.seen.length, 0);
    assert.match(await upgrade(s!.running.address.port, c.good), /^HTTP\/1\.1 101/);
    assert.equal(s!.upstream.seen.length, 1);
    assert.equal(s!.upstream.seen[0]!.headers["x-attested-client-verdict"], "trusted");
    assert.equal(s!.upstream.seen[0]!.headers["x-attested-client-mrenclave"], c.goodMrenclave);
  });
});

describe("mutual attestation: optional", { timeout: 60_000 }, () => {
  let c: Clients;
  let s: Served | undefined;
  before(async () => {
    c = await clientIdentities();
    s = await serveWith(c, "optional");
  });
  after(() => stop(s));

  it("admits a plain client with Verdict: absent (a forged verdict is replaced)", async () => {
    const r = await get(s!.base, "/plain", null, { "X-Attested-Client-Verdict": "trusted", "X-Attested-Client-Mrenclave": c.goodMrenclave });
    assert.equal(r.status, 200);
    const h = s!.upstream.seen.find((x) => x.url === "/plain")!.headers;
    assert.equal(h["x-attested-client-verdict"], "absent");
    assert.equal(h["x-attested-client-mrenclave"], undefined);
    assert.equal((await failures(s!.running)).absent, undefined, "absent is not a failure in optional mode");
  });

  it("admits a failing client with Verdict: rejected policy.measurement and no measurement headers", async () => {
    const r = await get(s!.base, "/failing", c.wrong);
    assert.equal(r.status, 200);
    const h = s!.upstream.seen.find((x) => x.url === "/failing")!.headers;
    assert.equal(h["x-attested-client-verdict"], "rejected policy.measurement");
    assert.equal(h["x-attested-client-mrenclave"], undefined);
    assert.equal(h["x-attested-client-mrsigner"], undefined);
    assert.equal((await failures(s!.running))["policy.measurement"], 1);
  });

  it("admits a good client with Verdict: trusted", async () => {
    const r = await get(s!.base, "/good", c.good);
    assert.equal(r.status, 200);
    const h = s!.upstream.seen.find((x) => x.url === "/good")!.headers;
    assert.equal(h["x-attested-client-verdict"], "trusted");
    assert.equal(h["x-attested-client-mrenclave"], c.goodMrenclave);
  });
});

describe("client gate: holding and the verdict cache", { timeout: 60_000 }, () => {
  let c: Clients;
  let policy: Policy;
  before(async () => {
    c = await clientIdentities();
    policy = await loadPolicy(writePolicy(tempDir("amcp-mutual-pol-"), clientPolicyYaml(c)));
  });

  it("a request on the connection is not routed until the appraisal is done", async () => {
    let release: (() => void) | undefined;
    const gated = new Promise<void>((r) => (release = r));
    class SlowAppraiser extends ClientAppraiser {
      override async appraise(der: Uint8Array): Promise<ClientVerdict> {
        await gated;
        return super.appraise(der);
      }
    }
    const gate = createClientGate({ mode: "required", policy, log: silent, appraiser: new SlowAppraiser({ policy }) });
    const server = await mintIdentity({ provider: await DevProvider.open({ dir: join(tempDir("amcp-mutual-srv-"), "dev"), warn: () => {} }) });
    const events: string[] = [];
    const https = createHttpsServer({ key: server.keyPem, cert: server.certPem, ...gate.tlsOptions }, (req, res) => {
      events.push("request");
      gate.hold(req, res, () => {
        events.push("routed");
        res.end(JSON.stringify(gate.headers(req)));
      });
    });
    https.prependListener("secureConnection", (s: TLSSocket) => gate.connection(s));
    await new Promise<void>((r) => https.listen(0, LOOPBACK, () => r()));
    try {
      const pending = get(`https://127.0.0.1:${portOf(https)}`, "/held", c.good);
      const deadline = Date.now() + 5000;
      while (!events.includes("request") && Date.now() < deadline) await sleep(10);
      assert.deepEqual(events, ["request"], "the request arrived and waits");
      await sleep(100);
      assert.deepEqual(events, ["request"], "still waiting while the appraisal runs");
      release!();
      const r = await pending;
      assert.deepEqual(events, ["request", "routed"]);
      assert.equal(JSON.parse(r.body)["X-Attested-Client-Verdict"], "trusted");
    } finally {
      release!();
      await shut(https);
    }
  });

  it("one appraisal per certificate, shared by concurrent connections; again once the certificate expired", async () => {
    let now = Date.now();
    let runs = 0;
    const a = new ClientAppraiser({ policy, now: () => now, onAppraised: () => void runs++ });
    const [v1, v2] = await Promise.all([a.appraise(c.good.certDer), a.appraise(c.good.certDer)]);
    assert.equal(v1.state, "trusted");
    assert.deepEqual(v1, v2);
    await a.appraise(c.good.certDer);
    assert.equal(runs, 1);
    now = c.good.notAfter.getTime() + 1;
    await a.appraise(c.good.certDer);
    assert.equal(runs, 2, "past notAfter the cached verdict is not used");
  });

  it("rejections are remembered only for the rejection TTL", async () => {
    let now = Date.now();
    let runs = 0;
    const a = new ClientAppraiser({ policy, now: () => now, rejectionTtlMs: 1000, onAppraised: () => void runs++ });
    const v = await a.appraise(c.wrong.certDer);
    assert.deepEqual(v.state === "rejected" && v.check, "policy.measurement");
    await a.appraise(c.wrong.certDer);
    assert.equal(runs, 1);
    now += 1001;
    await a.appraise(c.wrong.certDer);
    assert.equal(runs, 2);
  });

  it("the cache is bounded", async () => {
    const a = new ClientAppraiser({ policy, maxEntries: 2 });
    const provider = await DevProvider.open({ dir: join(tempDir("amcp-mutual-many-"), "dev"), mrenclave: new Uint8Array(32).fill(0xc1), warn: () => {} });
    for (let i = 0; i < 4; i++) await a.appraise((await mintIdentity({ provider, keyType: "P-256" })).certDer);
    assert.equal(a.size, 2);
  });

  it("a certificate that is not RA-TLS is rejected at cert.format", async () => {
    const a = new ClientAppraiser({ policy });
    const v = await a.appraise(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]));
    assert.equal(v.state === "rejected" && v.check, "cert.format");
  });
});

describe("mutual attestation: config at start", { timeout: 30_000 }, () => {
  it("serve exits 2 naming clientAttestation.policy and the policy's own key", async () => {
    const dir = tempDir("amcp-mutual-cli-");
    const policy = writePolicy(dir, "measurements: any\nfreshness: certificate\nbogus: 1\n");
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      `attestation: { provider: dev, dev: { dir: "${join(dir, "dev")}" } }\nupstream: { url: "http://127.0.0.1:1" }\nmetrics: { listen: null }\nclientAttestation: { mode: required, policy: "${policy}" }\n`,
    );
    const child = spawn(process.execPath, [CLI, "serve", "--config", file, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await within(new Promise<number | null>((r) => child.once("exit", (c) => r(c))), 15_000, "serve exits").finally(() => child.kill());
    assert.equal(code, 2, stderr);
    assert.match(stderr, /clientAttestation\.policy: bogus: unknown key/);
  });

  it("loadConfig: a client policy asking for exporter freshness is refused, naming the key", async () => {
    const dir = tempDir("amcp-mutual-fresh-");
    const policy = writePolicy(dir, "measurements: any\nfreshness: exporter\n");
    const file = join(dir, "serve.yaml");
    writeFileSync(file, `attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:1" }\nclientAttestation: { mode: optional, policy: "${policy}" }\n`);
    await assert.rejects(loadConfig({ file }), (e: unknown) => {
      assert.ok(e instanceof ClientPolicyError && e instanceof ConfigError);
      assert.equal(e.key, "clientAttestation.policy");
      assert.equal(e.policyKey, "freshness");
      assert.equal(e.code, "CLIENT_POLICY_INVALID");
      return true;
    });
  });
});
