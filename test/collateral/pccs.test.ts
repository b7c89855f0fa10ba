/**
 * PCCS client: collateral fetched from a stand-in PCCS on 127.0.0.1 (real vectors and dev
 * collateral), checked, cached in memory and on disk, served stale when the service fails.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { devCollateral } from "../../proxy/attest/dev/collateral.js";
import { DEV_PLATFORM } from "../../proxy/attest/dev/pki.js";
import { concatBytes } from "../../proxy/core/bytes.js";
import { CollateralError, InputError } from "../../proxy/core/errors.js";
import { collateralKeyOf, collateralUrls, INTEL_ROOT_CA_CRL_URL, normalisePccsUrl, PccsClient, type CollateralKey, type PccsOptions } from "../../proxy/collateral/pccs.js";
import { buildSgxExtension } from "../../proxy/attest/build/sgx-extension.js";
import type { Verdict } from "../../proxy/evidence/verdict.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { basicConstraints, buildCertificate, derToPem, keyUsage, type Name } from "../../proxy/attest/build/x509.js";
import { PccsStandin, setFromParts, setFromPcsDirectory, type StandinSet } from "../support/pccs-standin.js";
import { expected, vector, vectorPath } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const check = (v: Verdict, name: string) => v.checks.find((c) => c.check === name);
const code = (want: string, message?: RegExp) => (e: unknown) => {
  assert.equal((e as { code?: string }).code, want, (e as Error).message);
  if (message) assert.match((e as Error).message, message);
  return true;
};

const PHALA = expected.sgxQuotes.find((e) => e.path === "sgx/phala/quote.bin")!;
const PHALA_AT = new Date(PHALA.at!);
/** The earliest nextUpdate of the phala collateral: its QE identity, one second after the reference time. */
const PHALA_NEXT = "2025-07-19T10:01:18.000Z";
const PHALA_KEY: CollateralKey = { tee: "SGX", fmspc: "00a067110000", ca: "processor" };
const LATER = new Date(Date.parse(PHALA_NEXT) + 60_000);

/** A stand-in serving `sets`, closed after `f` whatever happens. */
async function withStandin<T>(sets: StandinSet[], f: (s: PccsStandin) => Promise<T>): Promise<T> {
  const s = await PccsStandin.start(sets);
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

/** A loopback URL nobody listens on. */
async function deadUrl(): Promise<string> {
  const s = await PccsStandin.start([]);
  await s.close();
  return s.url;
}

/** A client whose clock the test moves. */
function client(opts: Partial<PccsOptions> & { url: string }, clock: { now: Date }, warnings: string[] = []): PccsClient {
  return new PccsClient({ cacheDir: null, now: () => clock.now, warn: (m) => warnings.push(m), ...opts });
}

let phalaSet: StandinSet;
before(async () => {
  phalaSet = await setFromPcsDirectory(vectorPath(PHALA.collateral!), "processor");
});

describe("PCCS URLs", () => {
  it("normalises the base: with or without a trailing slash or sgx|tdx/certification/v4, a path prefix kept", () => {
    for (const u of [
      "https://api.trustedservices.intel.com",
      "https://api.trustedservices.intel.com/",
      "https://api.trustedservices.intel.com/sgx/certification/v4",
      "https://api.trustedservices.intel.com/sgx/certification/v4/",
      "https://API.trustedservices.intel.com/tdx/certification/v4//",
    ]) {
      assert.equal(normalisePccsUrl(u), "https://api.trustedservices.intel.com/", u);
    }
    assert.equal(normalisePccsUrl("https://pccs.local:8081/sgx/certification/v4/"), "https://pccs.local:8081/");
    assert.equal(normalisePccsUrl("https://gw.example/pccs/sgx/certification/v4"), "https://gw.example/pccs/");
    assert.equal(normalisePccsUrl("http://127.0.0.1:8081"), "http://127.0.0.1:8081/");
    assert.equal(normalisePccsUrl("http://[::1]:8081/sgx/certification/v4/"), "http://[::1]:8081/");
    assert.equal(normalisePccsUrl("http://localhost:8081/"), "http://localhost:8081/");
  });

  it("refuses plain http to a non-loopback host, naming the URL, and other malformed URLs", () => {
    assert.throws(
      () => normalisePccsUrl("http://pccs.example.com:8081/"),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.equal(e.code, "PCCS_URL_INSECURE");
        assert.match(e.message, /http:\/\/pccs\.example\.com:8081\//);
        return true;
      },
    );
    assert.throws(() => normalisePccsUrl("http://10.0.0.5/"), code("PCCS_URL_INSECURE"));
    assert.throws(() => normalisePccsUrl("http://128.0.0.1/"), code("PCCS_URL_INSECURE"));
    assert.throws(() => normalisePccsUrl("ftp://pccs.local/"), code("PCCS_URL_INVALID", /ftp:/));
    assert.throws(() => normalisePccsUrl("pccs.local:8081"), code("PCCS_URL_INVALID"));
    assert.throws(() => normalisePccsUrl("https://pccs.local/sgx/certification/v3/"), code("PCCS_URL_INVALID", /v3 is not supported/));
    assert.throws(() => normalisePccsUrl("https://pccs.local/?x=1"), code("PCCS_URL_INVALID", /query/));
    assert.throws(() => normalisePccsUrl("https://user:pw@pccs.local/"), code("PCCS_URL_INVALID", /credentials/));
    assert.throws(() => new PccsClient({ url: "http://pccs.example.com/", cacheDir: null }), code("PCCS_URL_INSECURE", /pccs\.example\.com/));
    assert.throws(() => new PccsClient({ url: "https://pccs.example.com/", cacheDir: null, rootCaCrlUrl: "http://crl.example.com/root.der" }), code("PCCS_URL_INSECURE", /crl\.example\.com/));
    assert.throws(() => new PccsClient({ url: "https://pccs.example.com/", cacheDir: null, timeoutMs: 0 }), code("PCCS_OPTIONS_INVALID"));
  });

  it("SGX, TDX, PCCS and Intel PCS endpoints", () => {
    const intel = collateralUrls("https://api.trustedservices.intel.com/sgx/certification/v4/", { tee: "SGX", fmspc: "00a067110000", ca: "processor" });
    assert.deepEqual(intel, {
      tcbInfo: "https://api.trustedservices.intel.com/sgx/certification/v4/tcb?fmspc=00A067110000",
      qeIdentity: "https://api.trustedservices.intel.com/sgx/certification/v4/qe/identity",
      pckCrl: "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
      rootCaCrl: INTEL_ROOT_CA_CRL_URL,
    });
    assert.equal(INTEL_ROOT_CA_CRL_URL, "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der");
    const tdx = collateralUrls("https://pccs.local:8081", { tee: "TDX", fmspc: "90C06F000000", ca: "platform" });
    assert.deepEqual(tdx, {
      tcbInfo: "https://pccs.local:8081/tdx/certification/v4/tcb?fmspc=90C06F000000",
      qeIdentity: "https://pccs.local:8081/tdx/certification/v4/qe/identity",
      pckCrl: "https://pccs.local:8081/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
      rootCaCrl: "https://pccs.local:8081/sgx/certification/v4/rootcacrl",
    });
    assert.equal(collateralUrls("https://pccs.local/", PHALA_KEY, "https://crl.local/root.der").rootCaCrl, "https://crl.local/root.der");
    assert.throws(() => collateralUrls("https://pccs.local/", { tee: "SGX", fmspc: "00a0671100", ca: "processor" }), code("COLLATERAL_KEY_INVALID"));
    assert.throws(() => collateralUrls("https://pccs.local/", { tee: "SGX", fmspc: "00a067110000", ca: "root" as "processor" }), code("COLLATERAL_KEY_INVALID"));
  });
});

// ---- quotes with a chain we build --------------------------------------------------------------

/** `quote` (a dev quote: certification data last) with its certification data replaced by a type 5 `pem` chain. */
function withPckChain(quote: Uint8Array, pem: string): Uint8Array {
  const dv = new DataView(quote.buffer, quote.byteOffset, quote.byteLength);
  const authLen = dv.getUint16(432 + 4 + 64 + 64 + 384 + 64, true);
  const certHead = 432 + 4 + 64 + 64 + 384 + 64 + 2 + authLen;
  const data = concatBytes(Buffer.from(pem, "latin1"), Uint8Array.of(0));
  const head = new Uint8Array(6);
  new DataView(head.buffer).setUint16(0, 5, true);
  new DataView(head.buffer).setUint32(2, data.length, true);
  const out = concatBytes(quote.subarray(0, certHead), head, data);
  new DataView(out.buffer).setUint32(432, out.length - 436, true);
  return out;
}

/** A root, a PCK CA named `caCn` and a PCK leaf with the dev platform's SGX extension. */
function chainWithCa(caCn: string): { rootPem: string; chainPem: string } {
  const k = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
  const [root, ca, leaf] = [k(), k(), k()];
  const now = Date.now();
  const from = new Date(now - 3600_000);
  const to = new Date(now + 86_400_000);
  const rootName: Name = [["CN", "attestable-mcp TEST Root CA"]];
  const caName: Name = [["CN", caCn]];
  const caUsage = keyUsage({ keyCertSign: true, cRLSign: true });
  const rootDer = buildCertificate({
    subject: rootName,
    notBefore: from,
    notAfter: to,
    publicKey: root.publicKey,
    signingKey: root.privateKey,
    extensions: [basicConstraints({ ca: true, pathLen: 1 }), caUsage],
  });
  const caDer = buildCertificate({
    subject: caName,
    issuer: rootName,
    notBefore: from,
    notAfter: to,
    publicKey: ca.publicKey,
    signingKey: root.privateKey,
    extensions: [basicConstraints({ ca: true, pathLen: 0 }), caUsage],
  });
  const leafDer = buildCertificate({
    subject: [["CN", "attestable-mcp TEST PCK Certificate"]],
    issuer: caName,
    notBefore: from,
    notAfter: to,
    publicKey: leaf.publicKey,
    signingKey: ca.privateKey,
    extensions: [
      basicConstraints({ ca: false }),
      buildSgxExtension({
        ppid: new Uint8Array(randomBytes(16)),
        tcbComponents: [...DEV_PLATFORM.tcbComponents],
        pceSvn: DEV_PLATFORM.pceSvn,
        cpuSvn: Uint8Array.from(DEV_PLATFORM.tcbComponents),
        pceId: DEV_PLATFORM.pceId,
        fmspc: Uint8Array.from([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]),
        sgxType: 0,
      }),
    ],
  });
  return { rootPem: derToPem(rootDer), chainPem: derToPem(leafDer) + derToPem(caDer) + derToPem(rootDer) };
}

let dev: DevProvider;
let devQuote: Uint8Array;
before(async () => {
  dev = await DevProvider.open({ dir: join(tempDir("amcp-pccs-dev-"), "dev"), mrenclave: new Uint8Array(32).fill(0xab), warn: () => undefined });
  devQuote = await dev.quote(new Uint8Array(64).fill(7));
});

describe("collateralKeyOf", () => {
  it("SGX vectors: FMSPC from the PCK leaf, processor or platform from the issuing CA", () => {
    assert.deepEqual(collateralKeyOf(vector("sgx/phala/quote.bin"), [], PHALA_AT), PHALA_KEY);
    assert.equal(PHALA.fmspc, PHALA_KEY.fmspc);
    const automata = expected.sgxQuotes.find((e) => e.path === "sgx/automata/quote.bin")!;
    assert.deepEqual(collateralKeyOf(vector(automata.path), [], new Date(automata.at!)), { tee: "SGX", fmspc: automata.fmspc, ca: "platform" });
  });

  it("TDX vector: tee TDX, the FMSPC its TCB info is for", () => {
    const e = expected.tdxQuotes.find((x) => x.path === "tdx/phala-v4/quote.bin")!;
    const tcbFmspc = (JSON.parse(readFileSync(join(vectorPath(e.collateral), "tcb-info.json"), "utf8")) as { tcbInfo: { fmspc: string } }).tcbInfo.fmspc.toLowerCase();
    assert.deepEqual(collateralKeyOf(vector(e.path), [], new Date(e.at)), { tee: "TDX", fmspc: tcbFmspc, ca: "platform" });
  });

  it("dev quote: with the dev root its key; without, the chain is untrusted and nothing is derived", () => {
    assert.deepEqual(collateralKeyOf(devQuote, [dev.rootPem]), { tee: "SGX", fmspc: "de7000000000", ca: "processor" });
    assert.throws(() => collateralKeyOf(devQuote), code("PCK_CHAIN_UNTRUSTED", /not a trusted root/));
  });

  it("a Platform CA by name gives platform; a CA named otherwise is refused", () => {
    const platform = chainWithCa("attestable-mcp TEST PCK Platform CA");
    assert.deepEqual(collateralKeyOf(withPckChain(devQuote, platform.chainPem), [platform.rootPem]), { tee: "SGX", fmspc: "123456789abc", ca: "platform" });
    const odd = chainWithCa("attestable-mcp TEST PCK Odd CA");
    assert.throws(
      () => collateralKeyOf(withPckChain(devQuote, odd.chainPem), [odd.rootPem]),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.equal(e.code, "PCK_CA_UNKNOWN");
        assert.match(e.message, /Odd CA/);
        return true;
      },
    );
  });

  it("no PCK chain in the quote (certification data type 3): a typed error", () => {
    assert.throws(() => collateralKeyOf(vector("sgx/fortanix/quote-cert-type-3.bin")), code("PCK_CHAIN_MISSING", /type 3/));
  });
});

// ---- the client on real collateral -------------------------------------------------------------

describe("PccsClient on the phala SGX vector", () => {
  it("fetches the four pieces, and verifyQuote on them gives the verdict of the vector's own files", async () => {
    await withStandin([phalaSet], async (s) => {
      const c = client({ url: s.url }, { now: PHALA_AT });
      const got = await c.get(PHALA_KEY);
      assert.equal(got.source, "network");
      assert.equal(got.error, null);
      assert.equal(got.fetchedAt, PHALA_AT.toISOString());
      assert.equal(got.nextUpdate, PHALA_NEXT);
      assert.deepEqual([...s.requests].sort(), [
        "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
        "/sgx/certification/v4/qe/identity",
        "/sgx/certification/v4/rootcacrl",
        "/sgx/certification/v4/tcb?fmspc=00A067110000",
      ]);
      // The signed text is the inner object exactly as served.
      assert.ok(phalaSet.tcbBody.includes(got.collateral.tcb_info));
      assert.ok(phalaSet.qeBody.includes(got.collateral.qe_identity));
      const fetched = await verifyQuote(vector(PHALA.path), { collateral: got.collateral, at: PHALA_AT });
      const direct = await verifyQuote(vector(PHALA.path), { collateral: vectorPath(PHALA.collateral!), at: PHALA_AT });
      assert.equal(fetched.ok, true, JSON.stringify(fetched.failed));
      assert.equal(fetched.tcb?.status, PHALA.tcbStatus);
      assert.deepEqual([...(fetched.tcb?.advisoryIds ?? [])].sort(), [...PHALA.advisoryIds!].sort());
      assert.deepEqual(fetched, direct);
    });
  });

  it("serves from memory, then from disk in a new client, with zero requests; cache dir 0700, file 0600", async () => {
    const dir = join(tempDir(), "cache");
    await withStandin([phalaSet], async (s) => {
      const clock = { now: PHALA_AT };
      const a = client({ url: s.url, cacheDir: dir }, clock);
      assert.equal((await a.get(PHALA_KEY)).source, "network");
      assert.equal(s.count(), 4);
      const again = await a.get({ ...PHALA_KEY, fmspc: PHALA_KEY.fmspc.toUpperCase() });
      assert.equal(again.source, "cache");
      assert.equal(again.fetchedAt, PHALA_AT.toISOString());
      assert.equal(s.count(), 4);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      const file = join(dir, "sgx-00a067110000-processor.json");
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir), ["sgx-00a067110000-processor.json"]);

      const warnings: string[] = [];
      const b = client({ url: s.url, cacheDir: dir }, clock, warnings);
      const fromDisk = await b.get(PHALA_KEY);
      assert.equal(fromDisk.source, "cache");
      assert.equal(fromDisk.nextUpdate, PHALA_NEXT);
      assert.deepEqual(fromDisk.collateral, again.collateral);
      assert.equal(s.count(), 4);
      assert.deepEqual(warnings, []);
    });
  });

  it('"~" in cacheDir is the home directory', async () => {
    const home = tempDir("amcp-pccs-home-");
    const saved = process.env.HOME;
    process.env.HOME = home;
    try {
      await withStandin([phalaSet], async (s) => {
        await client({ url: s.url, cacheDir: "~/.cache/amcp-pccs" }, { now: PHALA_AT }).get(PHALA_KEY);
      });
      assert.ok(existsSync(join(home, ".cache/amcp-pccs/sgx-00a067110000-processor.json")));
    } finally {
      process.env.HOME = saved;
    }
  });

  it("concurrent gets for one key share one fetch", async () => {
    await withStandin([phalaSet], async (s) => {
      const c = client({ url: s.url }, { now: PHALA_AT });
      const all = await Promise.all(Array.from({ length: 6 }, () => c.get(PHALA_KEY)));
      assert.equal(s.count(), 4);
      assert.ok(all.every((g) => g.source === "network"));
    });
  });

  it("after nextUpdate with the service down: the stale copy, with the reason; verifyQuote then fails collateral.fresh", async () => {
    const dir = join(tempDir(), "cache");
    const clock = { now: PHALA_AT };
    await withStandin([phalaSet], async (s) => {
      await client({ url: s.url, cacheDir: dir }, clock).get(PHALA_KEY);
    });
    const down = await deadUrl();
    const c = client({ url: down, cacheDir: dir }, clock);
    assert.equal((await c.get(PHALA_KEY)).source, "cache");
    clock.now = LATER;
    const stale = await c.get(PHALA_KEY);
    assert.equal(stale.source, "stale-cache");
    assert.equal(stale.nextUpdate, PHALA_NEXT);
    assert.match(stale.error ?? "", /^PCCS_UNREACHABLE: GET http:\/\/127\.0\.0\.1:\d+\/sgx\/certification\/v4\//);
    assert.match(stale.error ?? "", /ECONNREFUSED/);
    const v = await verifyQuote(vector(PHALA.path), { collateral: stale.collateral, at: LATER });
    assert.equal(v.ok, false);
    assert.equal(v.failed?.check, "collateral.fresh");
    assert.equal(check(v, "collateral.signature")?.ok, true);
  });

  it("after a failed refresh the service is left alone for retryAfterMs, then asked again", async () => {
    await withStandin([phalaSet], async (s) => {
      const clock = { now: PHALA_AT };
      const calls: string[] = [];
      const counting: typeof fetch = (input, init) => {
        calls.push(String(input));
        return fetch(input, init);
      };
      const c = client({ url: s.url, fetch: counting, retryAfterMs: 60_000 }, clock);
      await c.get(PHALA_KEY);
      assert.equal(calls.length, 4);
      s.fault = "http-500";
      clock.now = LATER;
      const first = await c.get(PHALA_KEY);
      assert.equal(first.source, "stale-cache");
      assert.match(first.error ?? "", /^PCCS_HTTP_STATUS: GET http:\/\/127\.0\.0\.1:\d+\/.* HTTP 500/);
      assert.equal(calls.length, 8);
      clock.now = new Date(LATER.getTime() + 59_000);
      const held = await c.get(PHALA_KEY);
      assert.equal(held.source, "stale-cache");
      assert.equal(held.error, first.error);
      assert.equal(calls.length, 8);
      s.fault = null;
      clock.now = new Date(LATER.getTime() + 61_000);
      const again = await c.get(PHALA_KEY);
      assert.equal(again.source, "network");
      assert.equal(calls.length, 12);
    });
  });

  it("after nextUpdate with a tampered signature: the stale copy is kept, the tampered one never returned nor cached", async () => {
    const dir = join(tempDir(), "cache");
    const file = join(dir, "sgx-00a067110000-processor.json");
    await withStandin([phalaSet], async (s) => {
      const clock = { now: PHALA_AT };
      const c = client({ url: s.url, cacheDir: dir, retryAfterMs: 0 }, clock);
      const good = await c.get(PHALA_KEY);
      const before = readFileSync(file);
      s.fault = "tamper-tcb-signature";
      // The stand-in really serves another signature.
      const served = (await (await fetch(`${s.url}sgx/certification/v4/tcb?fmspc=00A067110000`)).text()) as string;
      assert.notEqual(served, phalaSet.tcbBody);
      clock.now = LATER;
      const stale = await c.get(PHALA_KEY);
      assert.equal(stale.source, "stale-cache");
      assert.match(stale.error ?? "", /^COLLATERAL_SIGNATURE: .*TCB info signature does not verify/);
      assert.equal(stale.collateral.tcb_info_signature, good.collateral.tcb_info_signature);
      assert.deepEqual(readFileSync(file), before);

      // The PCK CRL is checked too.
      s.fault = "tamper-pck-crl";
      clock.now = new Date(LATER.getTime() + 60_000);
      const crl = await c.get(PHALA_KEY);
      assert.equal(crl.source, "stale-cache");
      assert.match(crl.error ?? "", /^COLLATERAL_SIGNATURE: .*PCK CRL signature does not verify/);
      assert.deepEqual(readFileSync(file), before);
      s.fault = "tamper-tcb-signature";

      // No good copy at all: an error, and nothing written.
      const empty = join(tempDir(), "cache");
      await assert.rejects(client({ url: s.url, cacheDir: empty }, { now: PHALA_AT }).get(PHALA_KEY), (e: unknown) => {
        assert.ok(e instanceof CollateralError);
        assert.equal(e.code, "COLLATERAL_UNAVAILABLE");
        assert.match(e.message, /COLLATERAL_SIGNATURE/);
        return true;
      });
      assert.equal(existsSync(empty) ? readdirSync(empty).length : 0, 0);
    });
  });

  it("a cache file changed on disk is not served: refetched when the service is up, an error when it is down", async () => {
    const dir = join(tempDir(), "cache");
    const file = join(dir, "sgx-00a067110000-processor.json");
    await withStandin([phalaSet], async (s) => {
      await client({ url: s.url, cacheDir: dir }, { now: PHALA_AT }).get(PHALA_KEY);
      const doc = JSON.parse(readFileSync(file, "utf8")) as { collateral: Record<string, string> };
      const sig = doc.collateral.tcb_info_signature!;
      doc.collateral.tcb_info_signature = (sig[0] === "0" ? "1" : "0") + sig.slice(1);
      writeFileSync(file, JSON.stringify(doc));
      const tampered = readFileSync(file);
      const warnings: string[] = [];
      const before = s.count();
      const got = await client({ url: s.url, cacheDir: dir }, { now: PHALA_AT }, warnings).get(PHALA_KEY);
      assert.equal(got.source, "network");
      assert.equal(s.count(), before + 4);
      assert.match(warnings.join("\n"), /sgx-00a067110000-processor\.json is not used: COLLATERAL_SIGNATURE/);
      assert.notDeepEqual(readFileSync(file), tampered);
      writeFileSync(file, tampered);
    });
    await assert.rejects(client({ url: await deadUrl(), cacheDir: dir }, { now: PHALA_AT }).get(PHALA_KEY), code("COLLATERAL_UNAVAILABLE", /PCCS_UNREACHABLE/));
  });

  it("no copy and the service down: COLLATERAL_UNAVAILABLE naming the URL and the failure", async () => {
    const url = await deadUrl();
    await assert.rejects(client({ url }, { now: PHALA_AT }).get(PHALA_KEY), (e: unknown) => {
      assert.ok(e instanceof CollateralError);
      assert.equal(e.code, "COLLATERAL_UNAVAILABLE");
      assert.ok(e.message.includes(url), e.message);
      assert.match(e.message, /SGX FMSPC 00a067110000 \(processor CA\)/);
      assert.match(e.message, /ECONNREFUSED/);
      assert.equal((e.cause as { code?: string }).code, "PCCS_UNREACHABLE");
      return true;
    });
  });

  it("timeouts are bounded: no answer, and an answer that stops mid-body", { timeout: 10_000 }, async () => {
    for (const fault of ["hang", "hang-body"] as const) {
      await withStandin([phalaSet], async (s) => {
        s.fault = fault;
        const t0 = Date.now();
        await assert.rejects(client({ url: s.url, timeoutMs: 150 }, { now: PHALA_AT }).get(PHALA_KEY), code("COLLATERAL_UNAVAILABLE", /PCCS_TIMEOUT: GET .* no complete answer within 150 ms/));
        const took = Date.now() - t0;
        assert.ok(took >= 140, `${fault}: gave up after ${took} ms, before its timeout`);
      });
    }
  });

  it("answers over 1 MiB are refused, with and without Content-Length", async () => {
    for (const fault of ["oversize", "oversize-chunked"] as const) {
      await withStandin([phalaSet], async (s) => {
        s.fault = fault;
        await assert.rejects(client({ url: s.url }, { now: PHALA_AT }).get(PHALA_KEY), code("COLLATERAL_UNAVAILABLE", /PCCS_RESPONSE_TOO_LARGE: .*limit of 1048576 bytes/));
      });
    }
  });

  it("a missing issuer-chain header, a malformed body and an unknown FMSPC are failures; the v3 header name is accepted", async () => {
    await withStandin([phalaSet], async (s) => {
      const c = client({ url: s.url, retryAfterMs: 0 }, { now: PHALA_AT });
      s.fault = "no-tcb-chain-header";
      await assert.rejects(c.get(PHALA_KEY), code("COLLATERAL_UNAVAILABLE", /PCCS_HEADER_MISSING: .*no TCB-Info-Issuer-Chain or SGX-TCB-Info-Issuer-Chain header/));
      s.fault = "malformed-qe-body";
      await assert.rejects(c.get(PHALA_KEY), code("COLLATERAL_UNAVAILABLE", /COLLATERAL_JSON: GET .*qe\/identity: not valid JSON/));
      s.fault = null;
      await assert.rejects(c.get({ ...PHALA_KEY, fmspc: "000000000000" }), code("COLLATERAL_UNAVAILABLE", /PCCS_HTTP_STATUS: .*HTTP 404/));
      s.fault = "old-tcb-header";
      assert.equal((await c.get(PHALA_KEY)).source, "network");
    });
  });

  it("collateral for another key than asked is refused: another FMSPC's TCB info, a TD QE identity, the wrong CA's CRL", async () => {
    await withStandin([{ ...phalaSet, fmspc: "00606a000000" }], async (s) => {
      await assert.rejects(
        client({ url: s.url }, { now: PHALA_AT }).get({ ...PHALA_KEY, fmspc: "00606a000000" }),
        code("COLLATERAL_UNAVAILABLE", /COLLATERAL_MISMATCH: TCB info is for FMSPC 00a067110000, not 00606a000000/),
      );
    });
    const tdx = await setFromPcsDirectory(vectorPath("tdx/phala-v4/collateral"), "platform");
    await withStandin([{ ...phalaSet, qeBody: tdx.qeBody, qeChain: tdx.qeChain }], async (s) => {
      await assert.rejects(client({ url: s.url }, { now: PHALA_AT }).get(PHALA_KEY), code("COLLATERAL_UNAVAILABLE", /COLLATERAL_MISMATCH: QE identity is TD_QE, not QE/));
    });
    await withStandin([{ ...phalaSet, ca: "platform" }], async (s) => {
      await assert.rejects(
        client({ url: s.url }, { now: PHALA_AT }).get({ ...PHALA_KEY, ca: "platform" }),
        code("COLLATERAL_UNAVAILABLE", /COLLATERAL_MISMATCH: PCK CRL is issued by CN=Intel SGX PCK Processor CA.*not by the platform CA/),
      );
    });
  });

  it("Intel PCS layout: the base given with sgx/certification/v4/, the root CA CRL as DER from its own URL", async () => {
    await withStandin([phalaSet], async (s) => {
      const c = client({ url: `${s.url}sgx/certification/v4/`, rootCaCrlUrl: `${s.url}IntelSGXRootCA.der` }, { now: PHALA_AT });
      const got = await c.get(PHALA_KEY);
      assert.equal(got.source, "network");
      assert.ok(s.requests.includes("/IntelSGXRootCA.der"));
      assert.equal(s.count("rootcacrl"), 0);
      const v = await verifyQuote(vector(PHALA.path), { collateral: got.collateral, at: PHALA_AT });
      assert.equal(v.ok, true, JSON.stringify(v.failed));
    });
  });
});

describe("PccsClient: platform CA and TDX", () => {
  it("platform CA (automata SGX vector): the platform CA's CRL, same verdict as the files", async () => {
    const e = expected.sgxQuotes.find((x) => x.path === "sgx/automata/quote.bin")!;
    const at = new Date(e.at!);
    const set = await setFromPcsDirectory(vectorPath(e.collateral!), "platform");
    await withStandin([set], async (s) => {
      const key = collateralKeyOf(vector(e.path), [], at);
      const got = await client({ url: s.url }, { now: at }).get(key);
      assert.ok(s.requests.includes("/sgx/certification/v4/pckcrl?ca=platform&encoding=der"));
      const fetched = await verifyQuote(vector(e.path), { collateral: got.collateral, at });
      assert.equal(fetched.ok, true, JSON.stringify(fetched.failed));
      assert.deepEqual(fetched, await verifyQuote(vector(e.path), { collateral: vectorPath(e.collateral!), at }));
    });
  });

  it("TDX (phala v4): tdx TCB info and QE identity paths, the sgx PCK CRL path; same verdict as the files", async () => {
    const e = expected.tdxQuotes.find((x) => x.path === "tdx/phala-v4/quote.bin")!;
    const at = new Date(e.at);
    const set = await setFromPcsDirectory(vectorPath(e.collateral), "platform");
    await withStandin([set], async (s) => {
      const key = collateralKeyOf(vector(e.path), [], at);
      const got = await client({ url: s.url }, { now: at }).get(key);
      assert.equal(got.source, "network");
      assert.deepEqual([...s.requests].sort(), [
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        "/sgx/certification/v4/rootcacrl",
        `/tdx/certification/v4/qe/identity`,
        `/tdx/certification/v4/tcb?fmspc=${key.fmspc.toUpperCase()}`,
      ]);
      const fetched = await verifyQuote(vector(e.path), { collateral: got.collateral, at });
      assert.equal(fetched.tcb?.status, e.tcbStatus);
      assert.deepEqual(fetched, await verifyQuote(vector(e.path), { collateral: vectorPath(e.collateral), at }));
      // The SGX stand-in routes do not answer for this FMSPC: the TEE is part of the key.
      await assert.rejects(client({ url: s.url }, { now: at }).get({ ...key, tee: "SGX" }), code("COLLATERAL_UNAVAILABLE", /HTTP 404/));
    });
  });
});

describe("PccsClient on dev collateral", () => {
  const T0 = new Date();
  const hour = 3600_000;
  let key: CollateralKey;
  before(() => {
    key = collateralKeyOf(devQuote, [dev.rootPem]);
  });

  it("with the dev root as trust root: fetched, cached, verified with the status the dev collateral states", async () => {
    const parts = devCollateral(dev.pki, { status: "SWHardeningNeeded", advisoryIds: ["INTEL-SA-00615"], issued: new Date(T0.getTime() - hour), nextUpdate: new Date(T0.getTime() + hour) });
    await withStandin([setFromParts(parts, "processor")], async (s) => {
      const c = client({ url: s.url, trustRoots: [dev.rootPem] }, { now: T0 });
      const got = await c.get(key);
      assert.equal(got.source, "network");
      const v = await verifyQuote(devQuote, { collateral: got.collateral, trustRoots: [dev.rootPem], at: T0 });
      assert.equal(v.ok, true, JSON.stringify(v.failed));
      assert.equal(v.dev, true);
      assert.equal(v.tcb?.status, "SWHardeningNeeded");
      assert.deepEqual(v.tcb?.advisoryIds, ["INTEL-SA-00615"]);
    });
  });

  it("without the dev root, dev collateral is never accepted, fetched or from a cache file", async () => {
    const parts = devCollateral(dev.pki, { issued: new Date(T0.getTime() - hour), nextUpdate: new Date(T0.getTime() + hour) });
    const dir = join(tempDir(), "cache");
    await withStandin([setFromParts(parts, "processor")], async (s) => {
      await assert.rejects(
        client({ url: s.url, cacheDir: dir }, { now: T0 }).get(key),
        code("COLLATERAL_UNAVAILABLE", /COLLATERAL_SIGNATURE: collateral does not verify under any trust root \(under CN=Intel SGX Root CA/),
      );
      assert.equal(existsSync(dir) ? readdirSync(dir).length : 0, 0);
      await client({ url: s.url, cacheDir: dir, trustRoots: [dev.rootPem] }, { now: T0 }).get(key);
      const warnings: string[] = [];
      const before = s.count();
      await assert.rejects(client({ url: s.url, cacheDir: dir }, { now: T0 }, warnings).get(key), code("COLLATERAL_UNAVAILABLE"));
      assert.equal(s.count(), before + 4);
      assert.match(warnings.join("\n"), /is not used: COLLATERAL_SIGNATURE/);
    });
  });

  it("after nextUpdate the service's newer collateral replaces the cached copy", async () => {
    const old = devCollateral(dev.pki, { status: "OutOfDate", issued: new Date(T0.getTime() - hour), nextUpdate: new Date(T0.getTime() + hour) });
    const next = new Date(T0.getTime() + 24 * hour);
    const renewed = devCollateral(dev.pki, { status: "UpToDate", issued: new Date(T0.getTime() + hour), nextUpdate: next });
    const dir = join(tempDir(), "cache");
    await withStandin([setFromParts(old, "processor")], async (s) => {
      const clock = { now: T0 };
      const c = client({ url: s.url, cacheDir: dir, trustRoots: [dev.rootPem] }, clock);
      assert.equal((await c.get(key)).source, "network");
      s.sets = [setFromParts(renewed, "processor")];
      clock.now = new Date(T0.getTime() + 30 * 60_000);
      assert.equal((await c.get(key)).source, "cache");
      assert.equal(s.count(), 4);
      clock.now = new Date(T0.getTime() + 2 * hour);
      const got = await c.get(key);
      assert.equal(got.source, "network");
      assert.equal(got.nextUpdate, new Date(Math.floor(next.getTime() / 1000) * 1000).toISOString());
      const v = await verifyQuote(devQuote, { collateral: got.collateral, trustRoots: [dev.rootPem], at: clock.now });
      assert.equal(v.ok, true, JSON.stringify(v.failed));
      assert.equal(v.tcb?.status, "UpToDate");
      // and the disk copy is the new one
      const disk = await client({ url: await deadUrl(), cacheDir: dir, trustRoots: [dev.rootPem] }, clock).get(key);
      assert.equal(disk.source, "cache");
      assert.deepEqual(disk.collateral, got.collateral);
    });
  });
});
