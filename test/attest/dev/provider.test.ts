/** The dev provider: its PKI on disk, its quotes through the unchanged verifier, dev collateral for every status. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { toHex } from "../../../proxy/core/bytes.js";
import { TCB_STATUSES } from "../../../proxy/evidence/dcap/collateral.js";
import { parseQuote } from "../../../proxy/evidence/dcap/quote.js";
import type { Verdict } from "../../../proxy/evidence/verdict.js";
import { verifyQuote } from "../../../proxy/evidence/dcap/verify.js";
import { DevProvider } from "../../../proxy/attest/dev/provider.js";
import { devCollateral, writeCollateralDirectory } from "../../../proxy/attest/dev/collateral.js";
import { openDevPki } from "../../../proxy/attest/dev/pki.js";
import { partsToQvl } from "../../support/mutate.js";
import { CLI } from "../../support/vectors.js";
import { tempDir } from "../../support/wait.js";

const MRENCLAVE = new Uint8Array(32).fill(0xab);
const RD = new Uint8Array(64).map((_, i) => i);
const check = (v: Verdict, name: string) => v.checks.find((c) => c.check === name);

describe("dev PKI on disk", () => {
  it("is created on first use: keys 0600 in a 0700 directory, root.pem beside them; reused after", async () => {
    const dir = join(tempDir("amcp-dev-"), "dev");
    const a = await openDevPki(dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const k of ["root", "pck-ca", "pck", "tcb-signing", "attestation", "signer"]) assert.equal(statSync(join(dir, `${k}.key`)).mode & 0o777, 0o600, k);
    assert.match(readFileSync(join(dir, "root.pem"), "utf8"), /BEGIN CERTIFICATE/);
    const b = await openDevPki(dir);
    assert.equal(b.root.pem, a.root.pem);
  });

  it("two processes starting at once end up with one PKI", async () => {
    const dir = join(tempDir("amcp-dev-"), "dev");
    const [a, b, c] = await Promise.all([openDevPki(dir), openDevPki(dir), openDevPki(dir)]);
    assert.equal(a.root.pem, b.root.pem);
    assert.equal(b.root.pem, c.root.pem);
  });

  it("an incomplete PKI is an error naming the file, never silently replaced", async () => {
    const dir = join(tempDir("amcp-dev-"), "dev");
    await openDevPki(dir);
    rmSync(join(dir, "pck.key"));
    await assert.rejects(openDevPki(dir), (e: unknown) => (e as { code?: string }).code === "DEV_PKI_INCOMPLETE" && /pck\.key/.test((e as Error).message));
  });

  it("the PCK leaf carries Intel's SGX extension with the dev platform's FMSPC", async () => {
    const pki = await openDevPki(join(tempDir("amcp-dev-"), "dev"));
    const { parsePckExtension } = await import("../../../proxy/evidence/asn1/sgx-extension.js");
    const ext = parsePckExtension(pki.pck.cert);
    assert.equal(toHex(ext.fmspc), "de7000000000");
    assert.equal(ext.pceSvn, 13);
  });
});

describe("dev quotes", () => {
  let p: DevProvider;
  let dir: string;
  const warnings: string[] = [];
  before(async () => {
    dir = join(tempDir("amcp-dev-"), "dev");
    p = await DevProvider.open({ dir, mrenclave: MRENCLAVE, isvProdId: 3, isvSvn: 7, warn: (m) => warnings.push(m) });
  });

  it("every start warns, naming the dev root to trust", () => {
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /not by Intel/);
    assert.ok(warnings[0]!.includes(join(dir, "root.pem")));
  });

  it("DCAP v3 layout: DEBUG set, MRSIGNER = SHA-256(signer key), the MRENCLAVE and report data given, type 5 NUL-terminated", async () => {
    const q = parseQuote(await p.quote(RD));
    assert.equal(q.header.version, 3);
    assert.equal(q.teeType, "SGX");
    if (q.teeType !== "SGX") return;
    assert.equal(q.body.attributes[0]! & 0x02, 0x02);
    const signer = createPublicKey(createPrivateKey(readFileSync(join(dir, "signer.key")))).export({ format: "der", type: "spki" });
    assert.equal(toHex(q.body.mrSigner), createHash("sha256").update(signer).digest("hex"));
    assert.equal(toHex(q.body.mrEnclave), toHex(MRENCLAVE));
    assert.equal(q.body.isvProdId, 3);
    assert.equal(q.body.isvSvn, 7);
    assert.equal(toHex(q.body.reportData), toHex(RD));
    const cd = q.signatureData.certification;
    assert.equal(cd.type, 5);
    assert.equal(cd.data[cd.data.length - 1], 0);
  });

  it("verifies unchanged with the dev root as trust root (dev: true), fails pck.chain without it", async () => {
    const q = await p.quote(RD);
    const v = await verifyQuote(q, { trustRoots: [p.rootPem] });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.dev, true);
    const w = await verifyQuote(q);
    assert.equal(w.ok, false);
    assert.equal(w.failed?.check, "pck.chain");
    assert.equal(w.dev, false);
  });

  it("the default MRENCLAVE stands for the proxy's compiled code (stable across opens)", async () => {
    const a = await DevProvider.open({ dir, warn: () => {} });
    const b = await DevProvider.open({ dir, warn: () => {} });
    assert.equal(toHex(a.mrenclave), toHex(b.mrenclave));
    assert.notEqual(toHex(a.mrenclave), toHex(MRENCLAVE));
  });

  it("refuses report data that is not 64 bytes", async () => {
    await assert.rejects(p.quote(new Uint8Array(63)), { code: "REPORT_DATA_SIZE" });
  });
});

describe("dev collateral drives every TCB status through the verifier", () => {
  let p: DevProvider;
  let quote: Uint8Array;
  before(async () => {
    p = await DevProvider.open({ dir: join(tempDir("amcp-dev-"), "dev"), mrenclave: MRENCLAVE, warn: () => {} });
    quote = await p.quote(RD);
  });
  const run = (opts: Parameters<typeof devCollateral>[1]) => verifyQuote(quote, { trustRoots: [p.rootPem], collateral: partsToQvl(devCollateral(p.pki, opts)) });

  for (const version of [3, 2] as const) {
    for (const status of TCB_STATUSES) {
      it(`TCB info v${version}, platform ${status}`, async () => {
        const v = await run({ status, tcbInfoVersion: version, advisoryIds: status === "UpToDate" ? [] : ["INTEL-SA-00001"] });
        assert.equal(v.tcb?.status, status);
        assert.equal(v.tcb?.platformStatus, status);
        assert.equal(check(v, "collateral.signature")?.ok, true);
        assert.equal(v.ok, status !== "Revoked", JSON.stringify(v.failed));
        if (status === "Revoked") assert.equal(v.failed?.check, "tcb.status");
        if (status !== "UpToDate") assert.deepEqual(v.tcb?.advisoryIds, ["INTEL-SA-00001"]);
      });
    }
  }

  it("QE OutOfDate converges: ConfigurationNeeded → OutOfDateConfigurationNeeded; advisories merged", async () => {
    const v = await run({ status: "ConfigurationNeeded", advisoryIds: ["INTEL-SA-00002"], qeStatus: "OutOfDate", qeAdvisoryIds: ["INTEL-SA-00003"] });
    assert.equal(v.tcb?.status, "OutOfDateConfigurationNeeded");
    assert.equal(v.tcb?.qeStatus, "OutOfDate");
    assert.deepEqual(v.tcb?.advisoryIds, ["INTEL-SA-00002", "INTEL-SA-00003"]);
  });

  it("QE Revoked fails qe.identity", async () => {
    const v = await run({ qeStatus: "Revoked" });
    assert.equal(check(v, "qe.identity")?.ok, false);
    assert.equal(v.ok, false);
  });

  it("a revoked PCK certificate fails pck.revocation", async () => {
    const v = await run({ revokePck: true });
    assert.equal(v.failed?.check, "pck.revocation");
    assert.match(v.failed?.reason ?? "", /revoked by the PCK CRL/);
  });

  it("stale dev collateral fails collateral.fresh", async () => {
    const v = await run({ issued: new Date(Date.now() - 40 * 86_400_000) });
    assert.equal(v.failed?.check, "collateral.fresh");
    assert.equal(v.tcb?.collateralExpired, true);
  });

  it("Intel-rooted verification refuses dev collateral even for a quote it would chain", async () => {
    const v = await verifyQuote(quote, { collateral: partsToQvl(devCollateral(p.pki)) });
    assert.equal(v.ok, false);
  });

  it("inspect --collateral DIR --trust-root root.pem on a dev quote: exit 0, status reported", async () => {
    const dir = tempDir("amcp-devcol-");
    await writeCollateralDirectory(join(dir, "col"), devCollateral(p.pki, { status: "SWHardeningNeeded" }));
    const qf = join(dir, "q.bin");
    (await import("node:fs")).writeFileSync(qf, quote);
    const root = join(dir, "root.pem");
    (await import("node:fs")).writeFileSync(root, p.rootPem);
    const r = spawnSync(process.execPath, [CLI, "inspect", qf, "--collateral", join(dir, "col"), "--trust-root", root, "--json"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const v = JSON.parse(r.stdout) as Verdict;
    assert.equal(v.dev, true);
    assert.equal(v.tcb?.status, "SWHardeningNeeded");
  });
});
