/**
 * Fuzz: well over 100k random and structure-aware malformed inputs through the parsers and the
 * verifier. Every input must end in a result or a typed EvidenceError (no TypeError, RangeError
 * or uncaught exception), none may hang, and the verifier must never accept a quote whose
 * verified content differs from the original. Deterministic: FUZZ_SEED reproduces a run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseQeIdentity, parseTcbInfo, splitSignedBody } from "../../proxy/evidence/dcap/collateral.js";
import { partsFromPcsDirectory } from "../../proxy/evidence/dcap/collateral-files.js";
import { pckCertificates } from "../../proxy/evidence/dcap/quote-checks.js";
import { EvidenceError } from "../../proxy/core/errors.js";
import { pemBlocks } from "../../proxy/evidence/asn1/pem.js";
import { parseQuote } from "../../proxy/evidence/dcap/quote.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { parseCertificate, parseCrl } from "../../proxy/evidence/asn1/x509.js";
import { mutateBytes, mutateQuote, rng } from "../support/mutate.js";
import { vector, vectorPath } from "../support/vectors.js";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1234);
/** A hang detector, not a performance target: no single input may take this long. */
const HANG_MS = 1000;

const QUOTES = ["sgx/phala/quote.bin", "sgx/occlum/quote.bin", "sgx/fortanix/quote-cert-type-3.bin", "tdx/phala-v4/quote.bin", "tdx/phala-v5/quote.bin"].map(vector);

interface Tally {
  inputs: number;
  ok: number;
  typed: number;
  slowest: number;
}

/** Run `f`; a throw must be an EvidenceError with a code. */
function probe(t: Tally, what: string, f: () => unknown): void {
  const t0 = performance.now();
  t.inputs++;
  try {
    f();
    t.ok++;
  } catch (e) {
    if (!(e instanceof EvidenceError) || typeof e.code !== "string" || e.code.length === 0) {
      assert.fail(`${what}: untyped ${(e as Error)?.name}: ${(e as Error)?.message} (seed ${SEED})`);
    }
    t.typed++;
  }
  const ms = performance.now() - t0;
  if (ms > t.slowest) t.slowest = ms;
  assert.ok(ms < HANG_MS, `${what}: took ${ms.toFixed(0)} ms`);
}

const tally = (): Tally => ({ inputs: 0, ok: 0, typed: 0, slowest: 0 });
const report = (name: string, t: Tally) => console.log(`# fuzz ${name}: ${t.inputs} inputs, ${t.ok} parsed, ${t.typed} typed errors, slowest ${t.slowest.toFixed(2)} ms (seed ${SEED})`);

describe("fuzz", () => {
  it("parseQuote: 70,000 structure-aware mutations of real SGX and TDX quotes", () => {
    const r = rng(SEED);
    const t = tally();
    for (let i = 0; i < 70_000; i++) {
      const input = mutateQuote(r, QUOTES[i % QUOTES.length]!);
      probe(t, `quote mutation #${i}`, () => parseQuote(input));
    }
    report("parseQuote", t);
    assert.ok(t.ok > 0 && t.typed > 0);
  });

  it("parseQuote: 10,000 random byte strings", () => {
    const r = rng(SEED + 1);
    const t = tally();
    for (let i = 0; i < 10_000; i++) {
      const input = new Uint8Array(Math.floor(r() * 5000));
      for (let k = 0; k < input.length; k++) input[k] = Math.floor(r() * 256);
      probe(t, `random quote #${i}`, () => parseQuote(input));
    }
    report("parseQuote random", t);
  });

  it("certificates, CRLs and PEM: 25,000 mutations of the real ones", async () => {
    const r = rng(SEED + 2);
    const t = tally();
    const parts = await partsFromPcsDirectory(vectorPath("sgx/phala/collateral"));
    const certs = [...pemBlocks(parts.tcbInfoIssuerChain), ...pemBlocks(parts.pckCrlIssuerChain)];
    const crls = [parts.pckCrl, parts.rootCaCrl];
    for (let i = 0; i < 10_000; i++) {
      const input = mutateBytes(r, certs[i % certs.length]!);
      probe(t, `certificate mutation #${i}`, () => parseCertificate(input));
    }
    for (let i = 0; i < 10_000; i++) {
      const input = mutateBytes(r, crls[i % crls.length]!);
      probe(t, `CRL mutation #${i}`, () => parseCrl(input));
    }
    const pem = parts.pckCrlIssuerChain;
    for (let i = 0; i < 5_000; i++) {
      const k = Math.floor(r() * pem.length);
      const input = pem.slice(0, k) + String.fromCharCode(Math.floor(r() * 128)) + pem.slice(k + 1 + Math.floor(r() * 3));
      probe(t, `PEM mutation #${i}`, () => pemBlocks(input).map((d) => parseCertificate(d)));
    }
    report("x509", t);
  });

  it("collateral JSON: 10,000 mutations of TCB info, QE identity and PCS bodies", async () => {
    const r = rng(SEED + 3);
    const t = tally();
    const parts = await partsFromPcsDirectory(vectorPath("sgx/phala/collateral"));
    const body = JSON.stringify({ tcbInfo: JSON.parse(parts.tcbInfo), signature: "00".repeat(64) });
    const mut = (s: string) => {
      const k = Math.floor(r() * s.length);
      const junk = ['"', "{", "}", "[", "]", ",", ":", "0", "-1", "1e999", "null", "\\", "\u0000", ""][Math.floor(r() * 14)]!;
      return s.slice(0, k) + junk + s.slice(k + Math.floor(r() * 4));
    };
    for (let i = 0; i < 4_000; i++) {
      const input = mut(parts.tcbInfo);
      probe(t, `TCB info mutation #${i}`, () => parseTcbInfo(input));
    }
    for (let i = 0; i < 3_000; i++) {
      const input = mut(parts.qeIdentity);
      probe(t, `QE identity mutation #${i}`, () => parseQeIdentity(input));
    }
    for (let i = 0; i < 3_000; i++) {
      const input = mut(body);
      probe(t, `PCS body mutation #${i}`, () => splitSignedBody(input, "tcbInfo", "body"));
    }
    report("collateral", t);
  });

  it("verifyQuote: 6,000 mutated quotes end in a verdict, never an exception, and never accept changed content", async () => {
    const r = rng(SEED + 4);
    const base = vector("sgx/phala/quote.bin");
    const at = new Date("2025-07-19T10:01:17Z");
    const collateral = vectorPath("sgx/phala/collateral");
    const origChain = (() => {
      const c = pckCertificates(parseQuote(base));
      assert.ok(c.ok);
      return c.value.map((x) => Buffer.from(x.der).toString("hex")).join();
    })();
    const signedEnd = parseQuote(base).length;
    let accepted = 0;
    let slowest = 0;
    for (let i = 0; i < 6_000; i++) {
      const input = mutateQuote(r, base);
      const t0 = performance.now();
      const v = await verifyQuote(input, { at, ...(i % 4 === 0 ? { collateral } : {}) });
      slowest = Math.max(slowest, performance.now() - t0);
      assert.ok(v.ok || v.failed !== null);
      if (!v.ok) continue;
      // Accepting is right only when everything verified is unchanged: the signed quote bytes
      // before the certification data, and the PCK chain (the PEM text around it may differ).
      accepted++;
      const q = parseQuote(input);
      const cdStart = q.signatureData.certification.offset;
      assert.deepEqual(input.subarray(0, cdStart), base.subarray(0, cdStart), `mutation #${i} accepted with changed signed bytes`);
      const c = pckCertificates(q);
      assert.ok(c.ok);
      assert.equal(c.value.map((x) => Buffer.from(x.der).toString("hex")).join(), origChain, `mutation #${i} accepted with a changed chain`);
      assert.ok(q.length === signedEnd);
    }
    assert.ok(slowest < HANG_MS, `slowest verification ${slowest} ms`);
    console.log(`# fuzz verifyQuote: 6000 inputs, ${accepted} accepted with unchanged verified content, slowest ${slowest.toFixed(2)} ms (seed ${SEED})`);
  });
});
