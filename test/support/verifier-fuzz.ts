/**
 * The verifier fuzz campaign (issue 8): mutated quotes, RA-TLS certificates, CBOR claims and
 * collateral bodies through the verifier itself, not just the parsers. Every input must end in a
 * verdict (never an exception), none may take 100 ms, and none may be accepted unless what the
 * verifier checks is byte-identical to the original (quotes ignore trailing bytes by design).
 * The suite runs a short campaign; `npm run soak` runs a long one with the same code.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { rm } from "node:fs/promises";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { mintIdentity } from "../../proxy/attest/identity.js";
import { partsFromPcsDirectory } from "../../proxy/evidence/dcap/collateral-files.js";
import { pckCertificates } from "../../proxy/evidence/dcap/quote-checks.js";
import { pemBlocks } from "../../proxy/evidence/asn1/pem.js";
import { parseQuote } from "../../proxy/evidence/dcap/quote.js";
import { buildClaims, buildRaTlsCertificate, spkiOf, taggedReportData } from "../../proxy/attest/build/ratls.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import type { Verdict } from "../../proxy/evidence/verdict.js";
import { verifyQuote } from "../../proxy/evidence/dcap/verify.js";
import { mutateBytes, mutateQuote, partsToQvl, rng } from "./mutate.js";
import { vector, vectorPath } from "./vectors.js";
import { tempDir } from "./wait.js";

export const SLOW_MS = 100;

export interface CampaignCounts {
  quotes: number;
  certificates: number;
  claims: number;
  collateral: number;
}

export interface KindReport {
  inputs: number;
  rejected: number;
  /** Accepted with the verified content byte-identical to the original (e.g. trailing bytes). */
  neutral: number;
  slowestMs: number;
  /** First failed check → count, to show the mutations reach deep checks. */
  byCheck: Record<string, number>;
}

export interface CampaignReport {
  seed: number;
  kinds: Record<keyof CampaignCounts, KindReport>;
  /** Inputs over SLOW_MS, an exception, or a changed input accepted: each is a finding. */
  findings: string[];
  seconds: number;
}

const newKind = (): KindReport => ({ inputs: 0, rejected: 0, neutral: 0, slowestMs: 0, byCheck: {} });
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** Run one input; `neutral(v)` decides whether an acceptance is of unchanged content. */
async function probe(k: KindReport, findings: string[], what: string, run: () => Promise<Verdict>, neutral: () => boolean): Promise<void> {
  k.inputs++;
  const t0 = cpuMs();
  let v: Verdict;
  try {
    v = await run();
  } catch (e) {
    findings.push(`${what}: threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return;
  }
  const ms = cpuMs() - t0;
  if (ms > k.slowestMs) k.slowestMs = ms;
  if (ms > SLOW_MS) findings.push(`${what}: took ${ms.toFixed(1)} ms`);
  if (v.ok) {
    if (neutral()) k.neutral++;
    else findings.push(`${what}: a changed input was accepted`);
    return;
  }
  if (v.failed === null) findings.push(`${what}: not ok but no failed check`);
  k.rejected++;
  const name = v.failed?.check ?? "?";
  k.byCheck[name] = (k.byCheck[name] ?? 0) + 1;
}

/** What verifyQuote vouches for: the signed quote up to the certification data, and the PCK chain. */
function verifiedContent(q: Uint8Array): string | null {
  try {
    const p = parseQuote(q);
    const chain = pckCertificates(p);
    return sha(q.subarray(0, p.signatureData.certification.offset)) + (chain.ok ? chain.value.map((c) => sha(c.der)).join() : "");
  } catch {
    return null;
  }
}

/**
 * Whether a mutated collateral field still carries the same bytes: hex is case-blind, and PEM
 * ignores line breaks and the unused low bits of the last base64 character. The signed JSON
 * texts count as they are.
 */
function sameBytes(field: string, mutated: string, original: string): boolean {
  try {
    if (field.endsWith("_chain"))
      return (
        pemBlocks(mutated)
          .map((d) => sha(d))
          .join() ===
        pemBlocks(original)
          .map((d) => sha(d))
          .join()
      );
    if (field === "tcb_info" || field === "qe_identity") return mutated === original;
    return /^[0-9a-fA-F]*$/.test(mutated) && mutated.toLowerCase() === original.toLowerCase();
  } catch {
    return false;
  }
}

/** CPU time, not wall time: the bound is about the verifier's work, not about who else runs. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function runVerifierFuzz(counts: CampaignCounts, seed = Number(process.env.FUZZ_SEED ?? 0x5eed5678)): Promise<CampaignReport> {
  const t0 = performance.now();
  const findings: string[] = [];
  const kinds = { quotes: newKind(), certificates: newKind(), claims: newKind(), collateral: newKind() };
  // Warm-up (JIT, key objects, collateral parsing) is not an input: the 100 ms bound is per input.
  const phala = vector("sgx/phala/quote.bin");
  const at = new Date("2025-07-19T10:01:17Z");
  const collateralDir = vectorPath("sgx/phala/collateral");
  const base = await verifyQuote(phala, { at, collateral: collateralDir });
  if (!base.ok) throw new Error(`the base quote must verify: ${JSON.stringify(base.failed)}`);
  const original = verifiedContent(phala);

  // 1. Quotes, with and without collateral.
  const r = rng(seed);
  for (let i = 0; i < counts.quotes; i++) {
    const input = mutateQuote(r, phala);
    await probe(
      kinds.quotes,
      findings,
      `quote #${i}`,
      () => verifyQuote(input, { at, ...(i % 5 === 0 ? { collateral: collateralDir } : {}) }),
      () => verifiedContent(input) === original,
    );
  }

  // 2. RA-TLS certificates (dev evidence): byte mutations of the whole DER.
  const dir = tempDir("amcp-fuzz-");
  try {
    const provider = await DevProvider.open({ dir, warn: () => {} });
    const id = await mintIdentity({ provider, keyType: "P-256" });
    const trustRoots = [provider.rootPem];
    const within = new Date(id.notBefore.getTime() + 60_000);
    const cert = id.certDer;
    const good = await verifyRaTlsCertificate(cert, { trustRoots, at: within });
    if (!good.ok) throw new Error(`the base certificate must verify: ${JSON.stringify(good.failed)}`);
    const rc = rng(seed + 1);
    for (let i = 0; i < counts.certificates; i++) {
      const input = mutateBytes(rc, cert);
      await probe(
        kinds.certificates,
        findings,
        `certificate #${i}`,
        () => verifyRaTlsCertificate(input, { trustRoots, at: within }),
        () => sha(input) === sha(cert),
      );
    }

    // 3. CBOR claims: mutated claims in a certificate properly signed by the same key, with the
    // original quote (whose report data hashes the original claims). Only binding can catch it.
    const claims = buildClaims(spkiOf(id.key));
    const taggedQuote = await provider.quote(taggedReportData(claims));
    const rl = rng(seed + 2);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    for (let i = 0; i < counts.claims; i++) {
      const mutated = i % 10 === 9 ? buildClaims(spkiOf(other)) : mutateBytes(rl, claims);
      const input = buildRaTlsCertificate({ key: id.key, claims: mutated, taggedQuote, notBefore: id.notBefore, notAfter: id.notAfter });
      await probe(
        kinds.claims,
        findings,
        `claims #${i}`,
        () => verifyRaTlsCertificate(input, { trustRoots, at: within }),
        () => sha(mutated) === sha(claims),
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // 4. Collateral bodies: the signed JSON texts, signatures, CRLs and issuer chains.
  const parts = partsToQvl(await partsFromPcsDirectory(collateralDir));
  const fields = Object.keys(parts) as (keyof typeof parts)[];
  const rb = rng(seed + 3);
  const pick = (n: number) => Math.floor(rb() * n);
  for (let i = 0; i < counts.collateral; i++) {
    const field = fields[i % fields.length]!;
    const text = parts[field]!;
    const k = pick(text.length);
    const junk = ['"', "{", "}", ",", ":", "0", "f", "A", "-", "\n", "", "1e999"][pick(12)]!;
    const mutated = text.slice(0, k) + junk + text.slice(k + pick(3));
    const input = { ...parts, [field]: mutated };
    await probe(
      kinds.collateral,
      findings,
      `collateral ${field} #${i}`,
      () => verifyQuote(phala, { at, collateral: input }),
      () => sameBytes(field, mutated, text),
    );
  }

  return { seed, kinds, findings, seconds: (performance.now() - t0) / 1000 };
}

export function formatReport(r: CampaignReport): string {
  const lines = Object.entries(r.kinds).map(([k, v]) => {
    const top = Object.entries(v.byCheck)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([c, n]) => `${c} ${n}`)
      .join(", ");
    return `# fuzz verifier ${k}: ${v.inputs} inputs, ${v.rejected} rejected, ${v.neutral} accepted unchanged, slowest ${v.slowestMs.toFixed(1)} ms CPU (first failures: ${top})`;
  });
  const total = Object.values(r.kinds).reduce((n, k) => n + k.inputs, 0);
  lines.push(`# fuzz verifier: ${total} inputs in ${r.seconds.toFixed(1)} s, ${r.findings.length} findings (seed ${r.seed})`);
  return lines.join("\n");
}
