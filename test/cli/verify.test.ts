/** `attestable-mcp verify` spawned against serve (dev provider): exit codes, output, the policy's errors. */
import assert from "node:assert/strict";
import { exec, execSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { EVERYTHING } from "../support/everything.js";
import { pinnedFetch, servedCertificate } from "../support/tls-client.js";
import { freePort } from "../support/upstream.js";
import { REPO } from "../support/vectors.js";
import { runCli } from "../support/cli.js";
import { generateKeyPairSync } from "node:crypto";
import { buildClaims, buildRaTlsCertificate, spkiOf } from "../../proxy/attest/build/ratls.js";
import { connectionVerdict } from "../../proxy/client/verdict.js";
import { applyPolicy, buildPolicy, loadPolicy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import type { TdxQuoteFields } from "../../proxy/evidence/verdict.js";
import { renderConnectionVerdict } from "../../proxy/cli/verify.js";
import { vector, vectorPath } from "../support/vectors.js";
import { policyDoc, startDevServe, type Served } from "../client/harness.js";

describe("attestable-mcp verify", { timeout: 90_000 }, () => {
  let s: Served | undefined;
  let n = 0;
  const policyFile = (doc: Record<string, unknown>): string => {
    const p = join(s!.dir, `policy-${n++}.yaml`);
    writeFileSync(p, stringify(doc));
    return p;
  };
  before(async () => {
    s = await startDevServe(`upstream: { command: ["${process.execPath}", "${EVERYTHING}", "stdio"] }\n`);
  });
  after(() => s?.close());

  it("exits 0 with a policy the server satisfies; the report names the binding and the freshness", async () => {
    const r = await runCli(["verify", `${s!.base}/mcp`, "--policy", policyFile(policyDoc(s!))]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /freshness\s+exporter: evidence bound to this TLS connection's exporter/);
    assert.match(r.stdout, /binding\s+ok: the quote binds this certificate's key/);
    assert.match(r.stdout, /ok\s+freshness\.quote/);
    assert.match(r.stdout, new RegExp(`mrenclave\\s+${s!.mrenclave}`));
    assert.match(r.stdout, /Verdict: TRUSTED/);
  });

  it("--json: inspect's verdict plus binding, freshness, policy and collateral", async () => {
    const file = policyFile(policyDoc(s!, { freshness: "nonce" }));
    const r = await runCli(["verify", s!.base, "--policy", file, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as Record<string, unknown> & { quote: { mrenclave: string }; binding: { ok: boolean }; freshness: { mode: string; ok: boolean }; checks: { check: string }[] };
    assert.equal(v.ok, true);
    assert.equal(v.quote.mrenclave, s!.mrenclave);
    assert.equal(v.binding.ok, true);
    assert.deepEqual([v.freshness.mode, v.freshness.ok], ["nonce", true]);
    assert.equal(v.policy, file);
    assert.equal(v.collateral, null);
    assert.equal(v.fingerprint, s!.running.identity.current.fingerprint);
    for (const k of ["checks", "failed", "tcb", "platform", "dev", "at", "certificate"]) assert.ok(k in v, k);
    assert.ok(v.checks.some((c) => c.check === "policy.measurement"));
  });

  it("exits 1 with a policy the server does not satisfy, naming the check", async () => {
    const r = await runCli(["verify", s!.base, "--policy", policyFile(policyDoc(s!, { measurements: [{ mrenclave: "cd".repeat(32) }] }))]);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stdout, /Verdict: REJECTED at policy\.measurement: mrenclave [0-9a-f]{64}/);
    const j = await runCli(["verify", s!.base, "--policy", policyFile(policyDoc(s!, { allowDebug: false })), "--json"]);
    assert.equal(j.code, 1);
    assert.equal((JSON.parse(j.stdout) as { failed: { check: string } }).failed.check, "policy.debug");
  });

  it("configs/policy.dev.yaml: rejected at policy.measurement showing the served MRENCLAVE; with it filled in, trusted", async () => {
    // The repo layout the file assumes: configs/ beside .attestable-mcp/dev/root.pem.
    const root = join(s!.dir, "checkout");
    mkdirSync(join(root, "configs"), { recursive: true });
    mkdirSync(join(root, ".attestable-mcp/dev"), { recursive: true });
    copyFileSync(s!.rootPath, join(root, ".attestable-mcp/dev/root.pem"));
    const file = join(root, "configs/policy.dev.yaml");
    copyFileSync(join(REPO, "configs/policy.dev.yaml"), file);
    const first = await runCli(["verify", `${s!.base}/mcp`, "--policy", file]);
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stdout, new RegExp(`REJECTED at policy\\.measurement: mrenclave ${s!.mrenclave}`));
    writeFileSync(file, readFileSync(file, "utf8").replace(/mrenclave: "0{64}"/, `mrenclave: "${s!.mrenclave}"`));
    const second = await runCli(["verify", `${s!.base}/mcp`, "--policy", file]);
    assert.equal(second.code, 0, second.stdout + second.stderr);
  });

  it("--save-cert FILE: the verified certificate as PEM when trusted, nothing when rejected or with --json unchanged", async () => {
    const saved = join(s!.dir, "saved.pem");
    const r = await runCli(["verify", `${s!.base}/mcp`, "--policy", policyFile(policyDoc(s!)), "--save-cert", saved]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Verdict: TRUSTED/);
    assert.match(r.stderr, new RegExp(`saved the verified certificate \\(sha256 ${s!.running.identity.current.fingerprint}\\) to `));
    const pem = readFileSync(saved, "utf8");
    assert.match(pem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    const served = await servedCertificate("127.0.0.1", s!.running.address.port);
    assert.deepEqual(new Uint8Array(new X509Certificate(pem).raw), served);
    assert.equal(pem, s!.running.identity.current.certPem);
    // Pinned as the only CA (what docs/pinning.md shows), it reaches the server without an appraisal.
    const pinned = pinnedFetch(new Uint8Array(new X509Certificate(pem).raw));
    try {
      assert.equal((await pinned.fetch(`${s!.base}/healthz`)).status, 200);
    } finally {
      await pinned.close();
    }

    const json = join(s!.dir, "saved-json.pem");
    const j = await runCli(["verify", s!.base, "--policy", policyFile(policyDoc(s!)), "--json", "--save-cert", json]);
    assert.equal(j.code, 0, j.stderr);
    assert.equal((JSON.parse(j.stdout) as { ok: boolean }).ok, true);
    assert.equal(readFileSync(json, "utf8"), pem);

    const rejected = join(s!.dir, "rejected.pem");
    const no = await runCli(["verify", s!.base, "--policy", policyFile(policyDoc(s!, { measurements: [{ mrenclave: "cd".repeat(32) }] })), "--save-cert", rejected]);
    assert.equal(no.code, 1, no.stderr + no.stdout);
    assert.equal(existsSync(rejected), false, "a rejected certificate is never saved");
    assert.doesNotMatch(no.stderr, /saved/);

    const unwritable = join(s!.dir, "no-such-dir", "cert.pem");
    const bad = await runCli(["verify", s!.base, "--policy", policyFile(policyDoc(s!)), "--save-cert", unwritable]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--save-cert .*cert\.pem: ENOENT/);
    assert.match(bad.stdout, /Verdict: TRUSTED/);
  });

  const tools = ["openssl", "curl"].every((t) => {
    try {
      execSync(`command -v ${t}`, { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  it("docs/pinning.md's curl pin: the openssl hash of the saved certificate's key admits it, another does not", { skip: !tools && "needs openssl and curl" }, async () => {
    const saved = join(s!.dir, "pin.pem");
    const r = await runCli(["verify", s!.base, "--policy", policyFile(policyDoc(s!)), "--save-cert", saved]);
    assert.equal(r.code, 0, r.stderr);
    const sh = promisify(exec);
    const pin = (await sh(`openssl x509 -in '${saved}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl enc -base64`)).stdout.trim();
    const spki = new X509Certificate(readFileSync(saved)).publicKey.export({ type: "spki", format: "der" });
    assert.equal(pin, createHash("sha256").update(spki).digest("base64"));
    // The server runs in this process: curl must not block its event loop.
    const curl = (p: string): Promise<number> =>
      sh(`curl -sk --pinnedpubkey 'sha256//${p}' -o /dev/null ${s!.base}/healthz`).then(
        () => 0,
        (e: { code: number }) => e.code,
      );
    assert.equal(await curl(pin), 0);
    assert.equal(await curl(createHash("sha256").update("another key").digest("base64")), 90, "curl: SSL public key does not match pinned public key");
  });

  it("configs/policy.example.yaml is a valid policy that trusts Intel only and no real enclave", async () => {
    const p = await loadPolicy(join(REPO, "configs/policy.example.yaml"));
    assert.equal(p.trustIntel, true);
    assert.deepEqual(p.trustRoots, []);
    assert.equal(p.allowDebug, false);
    assert.equal(p.tcb.require, true);
    assert.equal(p.freshness, "exporter");
    assert.ok(Array.isArray(p.measurements) && p.measurements.some((m) => m.tee === "TDX"));
    for (const m of p.measurements) {
      const pinned = m.tee === "SGX" ? [m.mrenclave, m.mrsigner] : [m.mrtd, m.rtmr0, m.rtmr1, m.rtmr2, m.rtmr3, m.mrconfigid, m.mrowner, m.mrownerconfig];
      assert.ok(
        pinned.every((h) => h === null || /^0+$/.test(h)),
        "placeholders only",
      );
    }
  });

  it("exits 2 for an unknown policy key (named), a missing --policy, and a connection refused", async () => {
    const bad = await runCli(["verify", s!.base, "--policy", policyFile({ ...policyDoc(s!), allowDebugg: true })]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /POLICY_INVALID: .*policy-\d+\.yaml: allowDebugg: unknown key/);
    assert.equal(bad.stdout, "");

    const none = await runCli(["verify", s!.base]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--policy FILE: there is no default trust/);

    const port = await freePort();
    const refused = await runCli(["verify", `https://127.0.0.1:${port}/mcp`, "--policy", policyFile(policyDoc(s!))]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /ECONNREFUSED/);

    const plain = await runCli(["verify", `http://127.0.0.1:${port}/mcp`, "--policy", policyFile(policyDoc(s!))]);
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /INSECURE_URL/);
  });
});

describe("verify's report of a TD", () => {
  it("shows the TD's registers and attributes, and the TDX policy miss by field", async () => {
    // A certificate carrying the real phala TDX v4 quote, judged at its collateral's time; that quote
    // cannot bind this key, so the verdict also fails binding.report-data, which comes first.
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const at = new Date("2025-07-19T10:00:34Z");
    const der = buildRaTlsCertificate({
      key: privateKey,
      claims: buildClaims(spkiOf(privateKey)),
      taggedQuote: vector("tdx/phala-v4/quote.bin"),
      notBefore: new Date(at.getTime() - 60_000),
      notAfter: new Date(at.getTime() + 3_600_000),
    });
    const ra = await verifyRaTlsCertificate(der, { collateral: vectorPath("tdx/phala-v4/collateral"), at });
    const q = ra.quote as TdxQuoteFields;
    const policy = await buildPolicy({ measurements: [{ mrtd: q.mrtd, rtmr1: "00".repeat(48) }], tcb: { maxCollateralAge: "365d" } }, "td.yaml", "/", async () => "");
    const freshness = { mode: "certificate" as const, ok: true, detail: "the certificate's quote only", nonce: null, exporter: null };
    const out = renderConnectionVerdict(connectionVerdict({ ...applyPolicy(ra, policy), collateral: null }, freshness, [], "ab".repeat(32), false), "https://127.0.0.1:1/mcp");
    assert.match(out, /^Quote \(from the certificate\): TDX quote v4/m);
    const rows: [string, string][] = [
      ["mrtd", q.mrtd],
      ["rtmr1", q.rtmr[1]!],
      ["rtmr2", q.rtmr[2]!],
      ["tdAttributes", `${q.tdAttributes} (SEPT_VE_DISABLE)`],
      ["debug", "no"],
      ["teeTcbSvn", q.teeTcbSvn],
      ["mrseam", q.mrseam],
    ];
    for (const [k, val] of rows) assert.ok(out.includes(`  ${k.padEnd(16)} ${val}\n`), k);
    assert.match(out, /FAIL policy\.measurement +TD mrtd .* match no entry: measurements\[0\]: rtmr1 differs$/m);
    assert.match(out, /^Verdict: REJECTED at binding\.report-data/m);
  });
});
