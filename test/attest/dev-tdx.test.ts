/**
 * The dev provider as a TDX trust domain: quote v4 in the layout real TDX quotes have (compared
 * with the phala v4 vector), every verifier check passing under the dev root and dev TDX
 * collateral, and a certificate that carries the quote in the TCG extension only.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { toHex } from "../../proxy/core/bytes.js";
import { parseQuote, type TdxQuote } from "../../proxy/evidence/dcap/quote.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { parseCertificate } from "../../proxy/evidence/asn1/x509.js";
import { readRaTls } from "../../proxy/evidence/ratls/read.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import type { Verdict } from "../../proxy/evidence/verdict.js";
import { DevProvider, devMrtd } from "../../proxy/attest/dev/provider.js";
import { devCollateral, writeCollateralDirectory } from "../../proxy/attest/dev/collateral.js";
import { DEV_TDX } from "../../proxy/attest/dev/tdx-quote.js";
import { mintIdentity } from "../../proxy/attest/identity.js";
import { partsToQvl } from "../support/mutate.js";
import { CLI, DIST, vector } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const RD = new Uint8Array(64).map((_, i) => 255 - i);
const MRTD = new Uint8Array(48).fill(0x7d);
const RTMR2 = new Uint8Array(48).fill(0x22);
/** Every check the verifier runs on a quote with collateral, in its order. */
const ALL_CHECKS = [
  "quote.format",
  "quote.signature",
  "qe.binding",
  "pck.chain",
  "qe.signature",
  "qe.enclave",
  "collateral.format",
  "collateral.signature",
  "pck.revocation",
  "collateral.fresh",
  "qe.identity",
  "tcb.status",
];
const check = (v: Verdict, name: string) => v.checks.find((c) => c.check === name);

function tdx(bytes: Uint8Array): TdxQuote {
  const q = parseQuote(bytes);
  assert.equal(q.teeType, "TDX");
  return q as TdxQuote;
}

describe("dev TDX quotes", () => {
  let p: DevProvider;
  let quote: Uint8Array;
  const warnings: string[] = [];
  before(async () => {
    p = await DevProvider.open({
      dir: join(tempDir("amcp-devtdx-"), "dev"),
      tee: "tdx",
      td: { mrtd: MRTD, rtmr: [new Uint8Array(48), new Uint8Array(48).fill(1), RTMR2, new Uint8Array(48)] },
      warn: (m) => warnings.push(m),
    });
    quote = await p.quote(RD);
  });

  it("parse as TDX quote v4 (TEE type 0x81, TD report 1.0) with the MRTD, RTMRs and report data given, DEBUG set", () => {
    assert.equal(p.tee, "tdx");
    assert.match(warnings[0]!, /trust domain is marked DEBUG/);
    const q = tdx(quote);
    assert.equal(q.header.version, 4);
    assert.equal(q.header.teeType, 0x81);
    assert.equal(q.bodyType, 2);
    assert.equal(q.length, quote.length);
    assert.equal(toHex(q.body.mrTd), toHex(MRTD));
    assert.equal(toHex(q.body.rtmr[2]), toHex(RTMR2));
    assert.equal(toHex(q.body.reportData), toHex(RD));
    assert.equal(q.body.tdAttributes[0]! & 0x01, 0x01, "TDATTRIBUTES.DEBUG");
    assert.equal(toHex(q.body.teeTcbSvn), toHex(DEV_TDX.teeTcbSvn));
    assert.equal(toHex(q.body.mrConfigId).length, 96);
    assert.notEqual(toHex(q.body.mrConfigId), "00".repeat(48));
  });

  it("lay out their signature data as the real phala v4 quote does: QE section in type 6, PCK chain in type 5, NUL-terminated", () => {
    const real = tdx(vector("tdx/phala-v4/quote.bin"));
    const dev = tdx(quote);
    for (const q of [real, dev]) {
      assert.equal(q.signatureData.certification.type, 5);
      const cd = q.signatureData.certification.data;
      assert.equal(cd[cd.length - 1], 0);
      assert.equal(
        Buffer.from(cd)
          .toString("latin1")
          .match(/BEGIN CERTIFICATE/g)?.length,
        3,
      );
    }
    assert.equal(dev.signatureData.qeAuthData.length, real.signatureData.qeAuthData.length);
    assert.deepEqual([dev.header.qeSvn, dev.header.pceSvn, toHex(dev.header.qeVendorId)], [real.header.qeSvn, real.header.pceSvn, toHex(real.header.qeVendorId)]);
    // Outer certification data type 6 sits right after the 64-byte signature and 64-byte key.
    const sigStart = 48 + 584 + 4;
    for (const [bytes, q] of [
      [vector("tdx/phala-v4/quote.bin"), real],
      [quote, dev],
    ] as const) {
      assert.equal(bytes[sigStart + 128]! | (bytes[sigStart + 129]! << 8), 6);
      assert.equal(q.signatureData.certification.offset - (sigStart + 128 + 6), 384 + 64 + 2 + q.signatureData.qeAuthData.length + 6);
    }
  });

  it("pass every verifier check with the dev root and dev TDX collateral: dev verdict, TDX module and TD_QE judged", async () => {
    const v = await verifyQuote(quote, { trustRoots: [p.rootPem], collateral: partsToQvl(devCollateral(p.pki, { tee: "tdx" })) });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.deepEqual(
      v.checks.map((c) => [c.check, c.ok]),
      ALL_CHECKS.map((c) => [c, true]),
    );
    assert.equal(v.dev, true);
    assert.equal(v.quote?.teeType, "TDX");
    assert.equal(v.quote?.debug, true);
    assert.deepEqual([v.tcb?.status, v.tcb?.tdxModuleStatus, v.tcb?.qeStatus], ["UpToDate", "UpToDate", "UpToDate"]);
    assert.match(check(v, "collateral.format")?.detail ?? "", /TCB info v3 \(TDX,.*QE identity TD_QE/);
  });

  it("fail pck.chain without the dev root", async () => {
    const v = await verifyQuote(quote);
    assert.equal(v.failed?.check, "pck.chain");
    assert.equal(v.dev, false);
  });

  it("are judged by the TDX collateral only: SGX dev collateral fails qe.identity (QE, not TD_QE) and tcb.status", async () => {
    const v = await verifyQuote(quote, { trustRoots: [p.rootPem], collateral: partsToQvl(devCollateral(p.pki)) });
    assert.equal(v.ok, false);
    assert.match(check(v, "qe.identity")?.detail ?? "", /QE identity is for QE, expected TD_QE/);
    assert.match(check(v, "tcb.status")?.detail ?? "", /TCB info is for SGX, the quote is TDX/);
  });

  it("dev TDX collateral drives the module and platform statuses: module OutOfDate converges, platform Revoked fails tcb.status", async () => {
    const old = await verifyQuote(quote, { trustRoots: [p.rootPem], collateral: partsToQvl(devCollateral(p.pki, { tee: "tdx", status: "SWHardeningNeeded", tdxModuleStatus: "OutOfDate" })) });
    assert.deepEqual([old.tcb?.platformStatus, old.tcb?.tdxModuleStatus, old.tcb?.status], ["SWHardeningNeeded", "OutOfDate", "OutOfDate"]);
    assert.equal(old.ok, true, JSON.stringify(old.failed));
    const revoked = await verifyQuote(quote, { trustRoots: [p.rootPem], collateral: partsToQvl(devCollateral(p.pki, { tee: "tdx", status: "Revoked" })) });
    assert.equal(revoked.failed?.check, "tcb.status");
    assert.throws(() => devCollateral(p.pki, { tee: "tdx", tcbInfoVersion: 2 }), { code: "DEV_OPTIONS_INVALID" });
  });

  it("inspect QUOTE --collateral DIR --trust-root root.pem: exit 0, TDX module and platform statuses from the PCS-layout directory", async () => {
    const dir = tempDir("amcp-devtdx-col-");
    await writeCollateralDirectory(join(dir, "col"), devCollateral(p.pki, { tee: "tdx", status: "ConfigurationNeeded", advisoryIds: ["INTEL-SA-00837"] }));
    writeFileSync(join(dir, "q.bin"), quote);
    writeFileSync(join(dir, "root.pem"), p.rootPem);
    const r = spawnSync(process.execPath, [CLI, "inspect", join(dir, "q.bin"), "--collateral", join(dir, "col"), "--trust-root", join(dir, "root.pem"), "--json"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const v = JSON.parse(r.stdout) as Verdict;
    assert.deepEqual([v.ok, v.dev, v.quote?.teeType, v.tcb?.status, v.tcb?.tdxModuleStatus], [true, true, "TDX", "ConfigurationNeeded", "UpToDate"]);
    assert.deepEqual(v.tcb?.advisoryIds, ["INTEL-SA-00837"]);
  });

  it("default MRTD stands for the compiled code: devMrtd over dist/proxy, 48 bytes, and what its quotes carry", async () => {
    const a = await DevProvider.open({ dir: p.pki.dir, tee: "tdx", warn: () => {} });
    assert.equal(toHex(a.td!.mrtd), toHex(await devMrtd(join(DIST, "proxy"))));
    assert.equal(a.td!.mrtd.length, 48);
    assert.equal(toHex(tdx(await a.quote(RD)).body.mrTd), toHex(a.td!.mrtd));
  });
});

describe("RA-TLS certificate over a dev TDX quote", () => {
  it("carries the quote in the TCG tagged-evidence extension only (no Gramine legacy extension) and verifies under the dev root", async () => {
    const dir = join(tempDir("amcp-devtdx-"), "dev");
    const p = await DevProvider.open({ dir, tee: "tdx", warn: () => {} });
    const id = await mintIdentity({ provider: p, keyType: "P-256" });
    const ev = readRaTls(parseCertificate(id.certDer));
    assert.ok(ev.tagged);
    assert.equal(ev.legacy, null);
    assert.deepEqual(
      ev.extensions.filter((e) => e.kind !== "x509").map((e) => e.kind),
      ["tcg-tagged-evidence"],
    );
    assert.equal(parseQuote(ev.tagged.quote).teeType, "TDX");
    const v = await verifyRaTlsCertificate(id.certDer, { trustRoots: [p.rootPem] });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.quote?.teeType, "TDX");
    assert.equal(v.dev, true);

    // The SGX dev provider over the same PKI still writes both.
    const sgx = await mintIdentity({ provider: await DevProvider.open({ dir, warn: () => {} }), keyType: "P-256" });
    const both = readRaTls(parseCertificate(sgx.certDer));
    assert.ok(both.tagged && both.legacy);
  });
});
