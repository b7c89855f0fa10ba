/**
 * Attestation provider faults through serve. Already proven elsewhere and not repeated here:
 * Identity.start rejects when the provider fails (test/attest/identity.test.ts "start fails when
 * the provider cannot attest"), the identity keeps its certificate through a failed rotation, marks
 * itself unhealthy and retries (identity.test.ts), `serve` of the enclave config outside an enclave
 * exits 1 with GRAMINE_UNAVAILABLE (test/e2e/serve.test.ts "the serve command"). Here: quote
 * generation that fails after the provider opened stops the spawned command with exit 1 and never
 * listens; a provider whose quotes do not bind is refused at start and at rotation; a failing
 * rotation through the running listener keeps serving the same certificate until it expires, turns
 * /healthz 503, is logged and counted, and recovers.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Writable } from "node:stream";
import { before, describe, it } from "node:test";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import type { AttestationProvider } from "../../proxy/attest/provider.js";
import { loadConfig } from "../../proxy/server/config.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { startServer } from "../../proxy/server/listener.js";
import { createRobustUpstream } from "../support/robust-upstream.js";
import { STDIO_SCRIPT, devDir, fetchVia, metric, pinnedAgent, scrape } from "../support/robust.js";
import { servedCertificate } from "../support/tls-client.js";
import { freePort, listen, portOf, shut } from "../support/upstream.js";
import { CLI, REPO } from "../support/vectors.js";
import { eventually, tempDir, within } from "../support/wait.js";

let dev: DevProvider;
before(async () => {
  dev = await DevProvider.open({ dir: devDir(), warn: () => {} });
});

const sha = (der: Uint8Array): string => createHash("sha256").update(der).digest("hex");

/** Nothing accepts TCP connections on the port. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    import("node:net").then(({ connect }) => {
      const c = connect({ host: "127.0.0.1", port });
      c.once("connect", () => (c.destroy(), resolve(false)));
      c.once("error", () => resolve(true));
    });
  });
}

describe("quote generation failing at start-up", { timeout: 60_000 }, () => {
  it("the serve command exits 1 with the reason and never listens (gramine files present, quotes unusable)", async () => {
    // A well-formed quote over other report data, and bytes that are no quote at all.
    const foreign = Buffer.from(await dev.quote(new Uint8Array(64)));
    for (const [what, quote, reason] of [
      ["not a quote", Buffer.from("no quote here"), /GRAMINE_QUOTE.*is not a quote/],
      ["a quote over other report data", foreign, /GRAMINE_QUOTE.*carries report data/],
    ] as const) {
      const dir = tempDir("amcp-robust-gramine-");
      mkdirSync(join(dir, "attestation"));
      writeFileSync(join(dir, "attestation/attestation_type"), "dcap\n");
      writeFileSync(join(dir, "attestation/user_report_data"), Buffer.alloc(64));
      writeFileSync(join(dir, "attestation/quote"), quote);
      const port = await freePort();
      const file = join(dir, "serve.yaml");
      writeFileSync(
        file,
        `listen: "127.0.0.1:${port}"\nattestation: { provider: gramine, gramine: { dir: "${join(dir, "attestation")}" } }\nupstream: { command: ["${process.execPath}", "${STDIO_SCRIPT}"] }\nmetrics: { listen: null }\nlog: { level: warn }\n`,
      );
      const t0 = performance.now();
      const child = spawn(process.execPath, [CLI, "serve", "--config", file], { cwd: REPO, env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (c) => (err += c));
      const listened = eventually(async () => child.exitCode !== null || !(await refused(port)), 15_000, 20);
      const code = await within(new Promise<number | null>((r) => child.once("exit", (c) => r(c))), 15_000, "serve exit");
      await listened;
      console.log(`start-up quote failure (${what}): exit ${code} after ${Math.round(performance.now() - t0)} ms: ${err.trim().split("\n").pop()}`);
      assert.equal(code, 1, err);
      assert.match(err, reason);
      assert.doesNotMatch(err, /serving https/);
    }
  });
});

/** A dev provider that can be switched to failing or to returning quotes that do not bind. */
function faulty(inner: AttestationProvider) {
  const state: { mode: "ok" | "fail" | "unbound" | "garbage"; calls: number } = { mode: "ok", calls: 0 };
  const p: AttestationProvider = {
    name: inner.name,
    dev: inner.dev,
    quote: async (rd) => {
      state.calls++;
      if (state.mode === "fail") throw new Error("quote service unavailable");
      if (state.mode === "garbage") return new Uint8Array(64).fill(7);
      if (state.mode === "unbound") return inner.quote(new Uint8Array(64));
      return inner.quote(rd);
    },
  };
  return { p, state };
}

describe("a certificate without evidence is never served", { timeout: 30_000 }, () => {
  it("a provider whose quotes do not parse or do not bind: start-up fails (QUOTE_UNBOUND) and nothing listens", async () => {
    for (const mode of ["garbage", "unbound"] as const) {
      const { p, state } = faulty(dev);
      state.mode = mode;
      const port = await freePort();
      const config = await loadConfig({
        sets: [
          ["listen", `"127.0.0.1:${port}"`],
          ["attestation.provider", "dev"],
          ["upstream.command", `["${process.execPath}", "${STDIO_SCRIPT}"]`],
          ["metrics.listen", "null"],
        ],
      });
      await assert.rejects(startServer(config, p, pino({ level: "silent" })), { code: "QUOTE_UNBOUND" }, mode);
      assert.ok(await refused(port), `${mode}: something listens on ${port}`);
    }
  });
});

describe("quote generation failing at rotation", { timeout: 40_000 }, () => {
  it("keeps serving the valid certificate until it expires, /healthz 503, logged and counted; unbound quotes count as failures; then recovers", async () => {
    const up = createRobustUpstream();
    await listen(up.server);
    const lines: { level: number; msg: string; err?: string }[] = [];
    const log = pino(
      { level: "warn" },
      new Writable({
        write(chunk: Buffer, _e, cb) {
          for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l));
          cb();
        },
      }),
    );
    const { p, state } = faulty(dev);
    const LIFETIME_MS = 4000;
    const config = await loadConfig({
      sets: [
        ["listen", '"127.0.0.1:0"'],
        ["attestation.provider", "dev"],
        ["certificate.lifetime", `${LIFETIME_MS}ms`],
        ["certificate.keyType", "P-256"],
        ["upstream.url", `"http://127.0.0.1:${portOf(up.server)}"`],
        ["metrics.listen", '"127.0.0.1:0"'],
      ],
    });
    const running = await startServer(config, p, log);
    const port = running.address.port;
    const metricsPort = (running.metricsServer!.address() as { port: number }).port;
    try {
      const first = running.identity.current;
      assert.equal(sha(await servedCertificate("127.0.0.1", port)), first.fingerprint);
      const agent = pinnedAgent(first.certPem);
      assert.equal((await fetchVia(agent, port, "/healthz")).status, 200);

      // Rotation is due at 80 % of the lifetime; the provider now returns quotes that bind nothing.
      state.mode = "unbound";
      assert.ok(await eventually(async () => metric(await scrape(metricsPort), "attestable_mcp_certificate_rotations_total", 'result="failed"') >= 1, LIFETIME_MS));
      state.mode = "fail";
      const failedAt = Date.now();
      const keptFor = (): number => first.notAfter.getTime() - failedAt;
      const sick = await fetchVia(agent, port, "/healthz");
      assert.equal(sick.status, 503);
      assert.match(sick.body, /the last rotation failed/);
      // Still the first certificate for new handshakes, still serving.
      assert.equal(sha(await servedCertificate("127.0.0.1", port)), first.fingerprint);
      assert.equal((await fetchVia(agent, port, "/fast")).status, 200);
      assert.ok(
        lines.some((l) => l.level === 50 && /certificate rotation failed/.test(l.msg) && /QUOTE_UNBOUND|other report data/.test(l.err ?? "")),
        JSON.stringify(lines.slice(0, 3)),
      );

      // Past notAfter: the same (expired) certificate, never one without evidence; /healthz says so.
      assert.ok(await eventually(() => Date.now() > first.notAfter.getTime() + 100, LIFETIME_MS));
      const expired = await fetchVia(pinnedAgent(first.certPem, { keepAlive: false }), port, "/healthz").catch((e: Error) => e);
      // A pinned client refuses the expired certificate; what is served is still the first one.
      assert.ok(expired instanceof Error && /expired/i.test(expired.message), String(expired));
      assert.equal(sha(await servedCertificate("127.0.0.1", port)), first.fingerprint);
      assert.ok(lines.some((l) => /has expired/.test(l.msg)));
      const m = await scrape(metricsPort);
      const failures = metric(m, "attestable_mcp_certificate_rotations_total", 'result="failed"');
      console.log(
        `rotation failure: ${failures} failed rotations counted, the certificate kept ${keptFor()} ms past the first failure (until notAfter), /healthz 503 ${JSON.stringify(JSON.parse(sick.body).problems)}`,
      );
      assert.ok(failures >= 2, "retried and counted each time");

      state.mode = "ok";
      assert.ok(await eventually(() => running.identity.current !== first, 3000), "recovered");
      const next = await servedCertificate("127.0.0.1", port);
      assert.equal(sha(next), running.identity.current.fingerprint);
      assert.equal((await verifyRaTlsCertificate(next, { trustRoots: [dev.rootPem] })).ok, true);
      const fresh = pinnedAgent(running.identity.current.certPem);
      assert.equal((await fetchVia(fresh, port, "/healthz")).status, 200);
      assert.ok(metric(await scrape(metricsPort), "attestable_mcp_certificate_rotations_total", 'result="ok"') >= 1);
      fresh.destroy();
      agent.destroy();
    } finally {
      await running.close();
      await shut(up.server);
    }
  });
});
