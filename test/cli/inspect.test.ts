/** The `attestable-mcp inspect` command, run as a user runs it (the linked bin after npm ci). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity } from "../../proxy/attest/identity.js";
import type { RaTlsVerdict } from "../../proxy/evidence/ratls/verify.js";
import { parse as parseYaml } from "yaml";
import { applyPolicy, buildPolicy } from "../../proxy/evidence/policy.js";
import type { TdxQuoteFields, Verdict } from "../../proxy/evidence/verdict.js";
import { CLI, REPO, vectorPath } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const PHALA_FILE = vectorPath("sgx/phala/quote.bin");
const PHALA_OPTS = ["--collateral", vectorPath("sgx/phala/collateral"), "--at", "2025-07-19T10:01:17Z"];

describe("inspect", () => {
  it("--help prints the usage and exits 0", () => {
    const r = run("--help");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /inspect FILE/);
  });

  it("--json prints the library's verdict; exit 0 when the evidence verifies", () => {
    const r = run("inspect", PHALA_FILE, ...PHALA_OPTS, "--json");
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as Verdict;
    assert.equal(v.ok, true);
    assert.equal(v.tcb?.status, "ConfigurationAndSWHardeningNeeded");
    assert.deepEqual(v.tcb?.advisoryIds, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert.equal(v.quote?.teeType === "SGX" && v.quote.mrenclave, "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  });

  it("human output shows every field and every check", () => {
    const r = run("inspect", PHALA_FILE, ...PHALA_OPTS);
    assert.equal(r.code, 0, r.stderr);
    for (const s of [
      "mrenclave",
      "mrsigner",
      "isvProdId",
      "debug",
      "reportData",
      "fmspc",
      "ConfigurationAndSWHardeningNeeded",
      "quote.signature",
      "pck.chain",
      "tcb.status",
      "Verdict: the evidence verifies",
    ]) {
      assert.ok(r.stdout.includes(s), s);
    }
  });

  it("a TDX quote (phala v4): the TD's registers one per row, TD attributes named, and a policy entry that pins it", async () => {
    const td = ["inspect", vectorPath("tdx/phala-v4/quote.bin"), "--collateral", vectorPath("tdx/phala-v4/collateral"), "--at", "2025-07-19T10:00:34Z"];
    const r = run(...td);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(run(...td, "--json").stdout) as Verdict;
    assert.equal(v.quote?.teeType, "TDX");
    const q = v.quote as TdxQuoteFields;
    const rows: [string, string][] = [
      ["mrtd", q.mrtd],
      ...q.rtmr.map((x, i): [string, string] => [`rtmr${i}`, x]),
      ["mrconfigid", q.mrconfigid],
      ["mrowner", q.mrowner],
      ["mrownerconfig", q.mrownerconfig],
      ["tdAttributes", `${q.tdAttributes} \\(SEPT_VE_DISABLE\\)`],
      ["debug", "no"],
      ["teeTcbSvn", q.teeTcbSvn],
      ["mrseam", q.mrseam],
    ];
    for (const [k, val] of rows) assert.match(r.stdout, new RegExp(`^  ${k} +${val}$`, "m"), k);
    assert.match(r.stdout, /^ {2}tdxModuleStatus +UpToDate$/m);
    assert.doesNotMatch(r.stdout, /mrenclave/);
    // The printed entry is a policy entry that this quote passes.
    const entry = /^ {2}policy entry +(\{ mrtd: .*\})$/m.exec(r.stdout);
    assert.ok(entry, "a TDX policy entry");
    const policy = await buildPolicy({ measurements: [parseYaml(entry[1]!)], tcb: { maxCollateralAge: "365d" } }, "(entry)", "/", async () => "");
    assert.deepEqual(Array.isArray(policy.measurements) && policy.measurements[0], {
      tee: "TDX",
      mrtd: q.mrtd,
      rtmr0: q.rtmr[0],
      rtmr1: q.rtmr[1],
      rtmr2: q.rtmr[2],
      rtmr3: q.rtmr[3],
      mrconfigid: null,
      mrowner: null,
      mrownerconfig: null,
    });
    const judged = applyPolicy(v, policy);
    assert.equal(judged.ok, true, JSON.stringify(judged.failed));
    // An SGX quote's entry pins its MRENCLAVE.
    assert.match(run("inspect", PHALA_FILE, ...PHALA_OPTS).stdout, /^ {2}policy entry +\{ mrenclave: "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb" \}$/m);
  });

  it("hex and base64 quote files give the same verdict as binary; Unix-seconds time works", () => {
    const dir = tempDir("amcp-inspect-");
    const bin = readFileSync(vectorPath("sgx/phala/quote.bin"));
    writeFileSync(join(dir, "q.hex"), bin.toString("hex").replace(/(.{64})/g, "$1\n"));
    writeFileSync(join(dir, "q.b64"), bin.toString("base64") + "\n");
    const at = String(Date.parse("2025-07-19T10:01:17Z") / 1000);
    const base = JSON.parse(run("inspect", vectorPath("sgx/phala/quote.bin"), "--at", at, "--json").stdout) as Verdict;
    for (const f of ["q.hex", "q.b64"]) {
      const r = run("inspect", join(dir, f), "--at", at, "--json");
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), base);
    }
  });

  it("exit 1 naming the failed check: corrupted quote, type 3, stale collateral", () => {
    const corrupted = run("inspect", vectorPath("sgx/fortanix/quote-corrupted.bin"), "--at", "2021-06-01T00:00:00Z");
    assert.equal(corrupted.code, 1);
    assert.match(corrupted.stdout, /REJECTED at quote\.signature/);
    const type3 = run("inspect", vectorPath("sgx/fortanix/quote-cert-type-3.bin"), "--json");
    assert.equal(type3.code, 1);
    assert.equal((JSON.parse(type3.stdout) as Verdict).failed?.check, "pck.chain");
    const stale = run("inspect", vectorPath("sgx/mobilecoin/quote.bin"), "--collateral", vectorPath("sgx/mobilecoin/collateral"), "--at", "2023-07-12T20:48:25Z");
    assert.equal(stale.code, 1);
    assert.match(stale.stdout, /REJECTED at collateral\.fresh/);
  });

  it("exit 2 for usage errors and unreadable input, with a message", () => {
    assert.equal(run("inspect").code, 2);
    assert.equal(run("inspect", "a", "b").code, 2);
    const missing = run("inspect", "/no/such/quote");
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /input file \/no\/such\/quote: ENOENT/);
    const badTime = run("inspect", vectorPath("sgx/phala/quote.bin"), "--at", "yesterday");
    assert.equal(badTime.code, 2);
    assert.match(badTime.stderr, /--at: "yesterday"/);
    const badRoot = run("inspect", vectorPath("sgx/phala/quote.bin"), "--trust-root", vectorPath("README.md"));
    assert.equal(badRoot.code, 2);
    assert.match(badRoot.stderr, /TRUST_ROOT_INVALID/);
    assert.equal(run("inspect", vectorPath("sgx/phala/quote.bin"), "--bogus").code, 2);
    assert.equal(run("frobnicate").code, 2);
  });

  it("an RA-TLS certificate, PEM or DER: binding and evidence verdict, extensions listed", () => {
    const pem = vectorPath("ratls/gramine-cert.pem");
    const r = run("inspect", pem, "--at", "2023-06-01T00:00:00Z", "--json");
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as RaTlsVerdict;
    assert.equal(v.binding?.ok, true);
    assert.equal(v.quote?.teeType === "SGX" && v.quote.mrenclave, "0866e7ca11b9f4efe4bf39b2607f4e1299f111920d96d95719080f01b62b7585");
    assert.ok(v.certificate?.extensions.some((e) => e.kind === "gramine-legacy-quote"));
    const dir = tempDir("amcp-inspect-");
    const der = Buffer.from(readFileSync(pem, "latin1").replace(/-----[^-]+-----|\s+/g, ""), "base64");
    writeFileSync(join(dir, "cert.der"), der);
    const d = run("inspect", join(dir, "cert.der"), "--at", "2023-06-01T00:00:00Z", "--json");
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(JSON.parse(d.stdout), v);
    const human = run("inspect", pem, "--at", "2023-06-01T00:00:00Z");
    for (const s of ["Certificate", "spkiSha256", "claim pubkey-hash", "binding.pubkey-hash", "gramine-legacy-quote", "Verdict: the evidence verifies"]) assert.ok(human.stdout.includes(s), s);
  });

  it("a certificate minted by the dev provider: verifies with --trust-root <dev dir>/root.pem (dev: true), fails pck.chain without", async () => {
    const base = tempDir("amcp-devcert-");
    const devDir = join(base, ".attestable-mcp", "dev");
    const provider = await DevProvider.open({ dir: devDir, warn: () => {} });
    const minted = await mintIdentity({ provider });
    writeFileSync(join(base, "cert.pem"), minted.certPem);
    const ok = run("inspect", join(base, "cert.pem"), "--trust-root", join(devDir, "root.pem"), "--json");
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    const v = JSON.parse(ok.stdout) as RaTlsVerdict;
    assert.equal(v.dev, true);
    assert.equal(v.binding?.ok, true);
    const human = run("inspect", join(base, "cert.pem"), "--trust-root", join(devDir, "root.pem"));
    assert.match(human.stdout, /DEV root: this is not Intel-rooted evidence/);
    const without = run("inspect", join(base, "cert.pem"), "--json");
    assert.equal(without.code, 1);
    assert.equal((JSON.parse(without.stdout) as RaTlsVerdict).failed?.check, "pck.chain");
  });

  it("garbage input is a verdict (exit 1 at quote.format), not a crash", () => {
    const dir = tempDir("amcp-inspect-");
    writeFileSync(join(dir, "junk"), "not a quote at all\n");
    const r = run("inspect", join(dir, "junk"), "--json");
    assert.equal(r.code, 1);
    assert.equal((JSON.parse(r.stdout) as Verdict).failed?.check, "quote.format");
  });
});

describe("the package", () => {
  it("node_modules/.bin/attestable-mcp --help works after npm ci", () => {
    const r = spawnSync(join(REPO, "node_modules/.bin/attestable-mcp"), ["--help"], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: attestable-mcp/);
  });

  it("a script in the repo imports { parseQuote, verifyQuote } by the package name", () => {
    const script = `import { parseQuote, verifyQuote } from "attestable-mcp-proxy";
      import { readFileSync } from "node:fs";
      const q = new Uint8Array(readFileSync(${JSON.stringify(vectorPath("sgx/phala/quote.bin"))}));
      const v = await verifyQuote(q, { at: new Date("2025-07-19T10:01:17Z") });
      console.log(parseQuote(q).header.version, v.ok);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: REPO, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "3 true");
  });
});
