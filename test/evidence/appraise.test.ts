/**
 * One appraisal reads a certificate once: the certificate and its quotes are parsed once, the
 * collateral source and the verifier get those parsed parts, and the policy's roots are the
 * anchors parsed when it loaded. Shown by handing the appraisal parts whose source bytes are
 * gone (any second parse would fail) and by the objects the collateral source receives. The one
 * outcome rule (`outcome`) is checked here too.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { devCollateral, writeCollateralDirectory } from "../../proxy/attest/dev/collateral.js";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity, type MintedIdentity } from "../../proxy/attest/identity.js";
import { collateralSource } from "../../proxy/collateral/source.js";
import { appraiseCertificate, appraiseParsed, type AppraisedQuote, type CollateralSource } from "../../proxy/evidence/appraise.js";
import { buildPolicy, type Policy } from "../../proxy/evidence/policy.js";
import { readRaTlsCertificate, type ParsedRaTls } from "../../proxy/evidence/ratls/read.js";
import type { Certificate } from "../../proxy/evidence/asn1/x509.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { outcome, type Check } from "../../proxy/evidence/verdict.js";
import { buildClaims, buildRaTlsCertificate, spkiOf } from "../../proxy/attest/build/ratls.js";
import { readQuote } from "../../proxy/evidence/dcap/quote.js";
import { tempDir } from "../support/wait.js";

describe("an appraisal parses once", { timeout: 30_000 }, () => {
  let provider: DevProvider;
  let id: MintedIdentity;
  let policy: Policy;
  let files: CollateralSource;

  before(async () => {
    const dir = tempDir("amcp-appraise-");
    provider = await DevProvider.open({ dir: join(dir, "dev"), warn: () => {} });
    id = await mintIdentity({ provider });
    await writeCollateralDirectory(join(dir, "collateral"), devCollateral(provider.pki));
    const doc = { trustRoots: [join(dir, "dev", "root.pem")], measurements: "any", allowDebug: true, tcb: { require: true }, collateral: { path: join(dir, "collateral") } };
    policy = await buildPolicy(doc, "(test policy)", dir, (p) => readFile(p, "utf8"));
    files = collateralSource(policy);
  });

  /** A collateral source that remembers what it was asked about. */
  function recording(inner: CollateralSource): { source: CollateralSource; asked: AppraisedQuote[] } {
    const asked: AppraisedQuote[] = [];
    return { asked, source: { forQuote: (q) => (asked.push(q), inner.forQuote(q)) } };
  }

  /** The parsed parts with every byte array they were parsed from emptied: only the parsed objects remain usable. */
  function withoutSourceBytes(p: ParsedRaTls): ParsedRaTls {
    const none = new Uint8Array(0);
    // Names are rendered from the DER on first use: render them, then hide the DER.
    void p.cert.subjectText;
    void p.cert.issuerText;
    const cert = Object.create(p.cert, { der: { value: none } }) as Certificate;
    const ev = p.evidence;
    return {
      cert,
      evidence: {
        ...ev,
        cert,
        tagged: ev.tagged ? { ...ev.tagged, quote: none } : null,
        legacy: ev.legacy ? { quote: none } : null,
        sdk: ev.sdk ? { quote: none } : null,
      },
      quotes: p.quotes,
    };
  }

  it("the verdict from parsed parts whose bytes are gone equals the verdict from the bytes", async () => {
    const at = new Date();
    const fromBytes = await appraiseCertificate(id.certDer, policy, files, at);
    assert.equal(fromBytes.ok, true, JSON.stringify(fromBytes.failed));
    const parsed = readRaTlsCertificate(id.certDer);
    assert.ok(parsed.ok);
    const fromParts = await appraiseParsed(withoutSourceBytes(parsed.value), policy, files, at);
    assert.deepEqual(fromParts, fromBytes);
  });

  it("the collateral source gets the quote the appraisal parsed, and its judged PCK path", async () => {
    const parsed = readRaTlsCertificate(id.certDer);
    assert.ok(parsed.ok);
    const { source, asked } = recording(files);
    const a = await appraiseParsed(parsed.value, policy, source);
    assert.equal(a.ok, true, JSON.stringify(a.failed));
    assert.equal(asked.length, 1);
    const q = asked[0]!;
    assert.ok(q.parsed.ok && parsed.value.quotes.tagged?.ok);
    assert.equal(q.parsed.value, parsed.value.quotes.tagged.value, "the very Quote object, not a second parse");
    assert.equal(q.bytes, parsed.value.evidence.tagged!.quote);
    assert.equal(q.pck?.chain?.ok, true, "the PCK path, judged before the source was asked");
  });

  it("the policy's roots are anchors parsed when it loaded: their PEM text is not read again", async () => {
    const without: Policy = { ...policy, trustRoots: policy.trustRoots.map((r) => ({ ...r, pem: "not a certificate" })) };
    const a = await appraiseCertificate(id.certDer, without, files);
    assert.equal(a.ok, true, JSON.stringify(a.failed));
    assert.equal(a.dev, true);
    assert.equal(policy.anchors.length, 2);
    assert.equal(policy.anchors[0]!.intel, true);
    assert.equal(policy.anchors[1]!.intel, false);
  });

  it("a PCCS source takes the collateral key from the appraised quote; one that does not parse gets the parser's reason", async () => {
    const urls: string[] = [];
    const fake = (async (u: string | URL | Request) => {
      urls.push(String(u));
      return new Response("no such collateral", { status: 404 });
    }) as typeof fetch;
    const pccs = await buildPolicy(
      { measurements: "any", allowDebug: true, trustRoots: [join(provider.pki.dir, "root.pem")], collateral: { pccsUrl: "https://pccs.invalid/", cacheDir: null } },
      "(test policy)",
      "/",
      (p) => readFile(p, "utf8"),
    );
    const source = collateralSource(pccs, { fetch: fake });
    const a = await appraiseCertificate(id.certDer, pccs, source);
    assert.equal(a.failed?.check, "collateral.source");
    assert.ok(
      urls.some((u) => /tcb\?fmspc=de7000000000/i.test(u)),
      urls.join(" "),
    );

    const garbage = new Uint8Array(64).fill(7);
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const claims = buildClaims(spkiOf(key));
    const now = Date.now();
    const cert = buildRaTlsCertificate({ key, claims, taggedQuote: garbage, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
    const b = await appraiseCertificate(cert, pccs, source);
    const why = readQuote(garbage);
    assert.ok(!why.ok);
    assert.deepEqual(b.checks[0], { check: "collateral.source", ok: false, detail: `collateral unavailable: ${why.reason}` });
  });

  it("a certificate that cannot be read: cert.format fails, the source is never asked, the policy still judges", async () => {
    const { source, asked } = recording(files);
    const a = await appraiseCertificate(new Uint8Array([0x30, 0x03, 1, 2, 3]), policy, source);
    assert.equal(asked.length, 0);
    assert.equal(a.ok, false);
    assert.equal(a.failed?.check, "cert.format");
    assert.equal(a.collateral, null);
    assert.deepEqual(
      a.checks.slice(0, 1).map((k) => [k.check, k.ok]),
      [["cert.format", false]],
    );
    assert.ok(a.checks.some((k) => k.check === "policy.measurement"));
    const plain = await verifyRaTlsCertificate(new Uint8Array([0x30, 0x03, 1, 2, 3]));
    assert.deepEqual(a.checks[0], plain.checks[0]);
  });
});

describe("outcome: the one rule for ok and failed", () => {
  const pass = (check: Check["check"]): Check => ({ check, ok: true, detail: "fine" });
  const fail = (check: Check["check"], detail: string): Check => ({ check, ok: false, detail });

  it("ok only when checks ran and none failed; failed is the first failure", () => {
    assert.deepEqual(outcome([pass("quote.format"), pass("quote.signature")]), { ok: true, failed: null });
    assert.deepEqual(outcome([]), { ok: false, failed: null });
    assert.deepEqual(outcome([pass("quote.format"), fail("quote.signature", "a"), fail("qe.binding", "b")]), { ok: false, failed: { check: "quote.signature", reason: "a" } });
  });

  it("a condition the caller adds refuses even without a failed check (fail closed)", () => {
    assert.deepEqual(outcome([pass("quote.format")], true, false), { ok: false, failed: null });
    assert.deepEqual(outcome([pass("quote.format")], true, true), { ok: true, failed: null });
  });
});
