/**
 * The quoting enclave is checked without collateral. A quote whose QE report names a foreign QE
 * (another MRSIGNER), correctly signed by the PCK leaf, is what a host able to run an enclave
 * with the provisioning key could make: served by a real `serve` listener and checked by the real
 * `verify` command with `tcb.require: false`, it is refused at `qe.enclave`. The built-in Intel
 * identities are the ones Intel publishes (the QE identity JSON of the vectors), and every real
 * Intel-rooted quote passes the check.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, sign } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { stringify } from "yaml";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { readQuote } from "../../proxy/evidence/dcap/quote.js";
import { INTEL_SGX_QE, INTEL_TD_QE } from "../../proxy/evidence/dcap/qe-known.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { loadConfig } from "../../proxy/server/config.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { countingUpstream, type CountingUpstream } from "../client/harness.js";
import { CLI, REPO, vector, vectorPath } from "../support/vectors.js";
import { tempDir, within } from "../support/wait.js";

/** A QE MRSIGNER that is not Intel's: the host's own enclave, launched with the provisioning key. */
const FOREIGN_MRSIGNER = createHash("sha256").update("a host's own quoting enclave").digest();

/** The dev provider's quotes with the QE report's MRSIGNER replaced and the report re-signed by the PCK leaf. */
function foreignQe(dev: DevProvider): DevProvider {
  return Object.assign(Object.create(dev) as DevProvider, {
    async quote(rd: Uint8Array): Promise<Uint8Array> {
      const q = Uint8Array.from(await dev.quote(rd));
      const parsed = readQuote(q);
      assert.ok(parsed.ok);
      const sd = parsed.value.signatureData;
      const at = (sub: Uint8Array): number => sub.byteOffset - q.byteOffset;
      const reportAt = at(sd.qeReportBytes);
      q.set(FOREIGN_MRSIGNER, reportAt + 128);
      const signature = sign("sha256", q.subarray(reportAt, reportAt + 384), { key: dev.pki.pck.key, dsaEncoding: "ieee-p1363" });
      q.set(signature, at(sd.qeReportSignature));
      return q;
    },
  });
}

function verifyCli(url: string, policy: string): Promise<{ code: number | null; stdout: string }> {
  return within(
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, "verify", url, "--policy", policy, "--json"], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.once("error", reject);
      child.once("exit", (code) => resolve({ code, stdout }));
    }),
    30_000,
    "attestable-mcp verify",
  );
}

describe("qe.enclave: the QE is Intel's (or the dev QE under a dev root), with no collateral", { timeout: 90_000 }, () => {
  const dir = tempDir("amcp-qe-");
  let up: CountingUpstream;
  const servers: RunningServer[] = [];
  let dev: DevProvider;

  async function serveWith(provider: DevProvider): Promise<string> {
    const file = join(dir, `serve-${servers.length}.yaml`);
    writeFileSync(
      file,
      `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${join(dir, "dev")}" } }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\nupstream: { url: "http://127.0.0.1:${up.port}" }\n`,
    );
    const running = await startServer(await loadConfig({ file }), provider, pino({ level: "silent" }));
    servers.push(running);
    return `https://127.0.0.1:${running.address.port}/`;
  }

  const policy = (): string => {
    const p = join(dir, "policy.yaml");
    const doc = {
      trustRoots: [join(dir, "dev/root.pem")],
      measurements: [{ mrenclave: Buffer.from(dev.mrenclave).toString("hex") }],
      allowDebug: true,
      tcb: { require: false },
      freshness: "exporter",
    };
    writeFileSync(p, stringify(doc));
    return p;
  };

  before(async () => {
    up = await countingUpstream();
    dev = await DevProvider.open({ dir: join(dir, "dev"), warn: () => {} });
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await up.close();
  });

  it("a foreign QE's report, signed by the PCK leaf, is refused by `verify` with tcb.require: false, naming qe.enclave; the dev QE passes", async () => {
    const [honest, forged] = await Promise.all([serveWith(dev), serveWith(foreignQe(dev))]);
    const file = policy();
    const [ok, bad] = await Promise.all([verifyCli(honest, file), verifyCli(forged, file)]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal(bad.code, 1, bad.stdout);
    const verdict = JSON.parse(bad.stdout) as { ok: boolean; failed: { check: string; reason: string }; checks: { check: string; ok: boolean }[] };
    assert.equal(verdict.ok, false);
    assert.equal(verdict.failed.check, "qe.enclave");
    assert.match(verdict.failed.reason, new RegExp(`QE MRSIGNER ${FOREIGN_MRSIGNER.toString("hex")} is not the dev quoting enclave's`));
    // Everything a PCK signature proves still holds: only the QE's identity gives it away.
    for (const name of ["quote.signature", "qe.binding", "pck.chain", "qe.signature"]) assert.equal(verdict.checks.find((c) => c.check === name)?.ok, true, name);
    assert.equal(up.seen.length, 0, "nothing reached the upstream");
  });

  it("the built-in identities are Intel's published QE identities (QE and TD_QE), and the real Intel-rooted quotes pass", async () => {
    for (const [want, file] of [
      [INTEL_SGX_QE, "sgx/phala/collateral/qe-identity.json"],
      [INTEL_TD_QE, "tdx/phala-v4/collateral/qe-identity.json"],
    ] as const) {
      const id = (JSON.parse(readFileSync(vectorPath(file), "utf8")) as { enclaveIdentity: Record<string, unknown> }).enclaveIdentity;
      assert.equal(Buffer.from(want.mrsigner).toString("hex").toUpperCase(), id.mrsigner, file);
      assert.equal(want.isvProdId, id.isvprodid, file);
      assert.equal(Buffer.from(want.attributesMask).toString("hex").toUpperCase(), id.attributesMask, file);
    }
    for (const [path, at] of [
      ["sgx/phala/quote.bin", "2025-07-19T10:01:17Z"],
      ["sgx/automata/quote.bin", "2025-07-19T10:01:17Z"],
      ["tdx/phala-v4/quote.bin", "2025-07-19T10:01:17Z"],
    ] as const) {
      const v = await verifyQuote(vector(path), { at: new Date(at) });
      const c = v.checks.find((x) => x.check === "qe.enclave");
      assert.equal(c?.ok, true, `${path}: ${c?.detail}`);
    }
  });
});
