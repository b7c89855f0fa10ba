/**
 * `npm run bench:verify`: milliseconds per quote verification with collateral, this verifier vs
 * @phala/dcap-qvl, on the same real quotes and collateral, in one process.
 *
 * Three figures for ours, so the caches cannot flatter it:
 * - cold:   every cache cleared (keys, signature results, parsed PCK chains) and the collateral
 *           re-parsed from the same strings dcap-qvl gets;
 * - keys:   collateral prepared once and KeyObjects cached (parsing is not verifying), but every
 *           signature (quote, QE report, PCK chain, CRLs, TCB info, QE identity) verified again;
 * - warm:   steady state of a long-lived verifier: collateral prepared once (as a PCCS cache
 *           holds it until nextUpdate), certificate / collateral signature results memoised.
 *           The quote's own signature and the QE report signature are verified every time.
 * And the simple call a library caller writes, `verifyQuote(quote, { collateral: DIR })`:
 * - dir:       collateral given as a directory: each file stat'ed, the prepared collateral
 *              remembered by file identity, signature results memoised (warm plus the stats);
 * - dir first: the same with the remembered collateral forgotten before every call, so each call
 *              reads and prepares the seven files (what every call cost before it was remembered).
 * Bounded: at most ITER iterations and BUDGET_MS per target and quote.
 */
import { createRequire } from "node:module";
import { clearCollateralMemo, loadCollateral } from "../proxy/evidence/dcap/collateral-files.js";
import { clearPckChainCache } from "../proxy/evidence/dcap/quote-checks.js";
import { clearSignatureCaches } from "../proxy/evidence/dcap/signatures.js";
import { verifyQuote } from "../proxy/evidence/dcap/verify.js";
import { qvlCollateralFromDir } from "../test/support/qvl.js";
import { vector, vectorPath } from "../test/support/vectors.js";

const qvl = createRequire(import.meta.url)("@phala/dcap-qvl") as { verify(q: Uint8Array, c: object, now: number): { status: string } };

const ITER = Number(process.env.BENCH_ITER ?? 300);
const BUDGET_MS = Number(process.env.BENCH_BUDGET_MS ?? 4000);

const CASES = [
  { path: "sgx/phala/quote.bin", collateral: "sgx/phala/collateral", at: "2025-07-19T10:01:17Z" },
  { path: "sgx/automata/quote.bin", collateral: "sgx/automata/collateral", at: "2025-08-15T05:45:00Z" },
];

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < 5; i++) await fn(); // warm the JIT
  const t0 = performance.now();
  let n = 0;
  while (n < ITER && performance.now() - t0 < BUDGET_MS) {
    await fn();
    n++;
  }
  return (performance.now() - t0) / n;
}

const rows: { quote: string; target: string; ms: number }[] = [];
for (const c of CASES) {
  const quote = vector(c.path);
  const at = new Date(c.at);
  const qvlCol = await qvlCollateralFromDir(vectorPath(c.collateral));
  const prepared = await loadCollateral(vectorPath(c.collateral));

  const check = await verifyQuote(quote, { at, collateral: prepared });
  if (!check.ok) throw new Error(`${c.path}: verifier refused the benchmark quote: ${JSON.stringify(check.failed)}`);
  qvl.verify(quote, qvlCol, at.getTime() / 1000);

  rows.push({ quote: c.path, target: "dcap-qvl", ms: await time(() => qvl.verify(quote, qvlCol, at.getTime() / 1000)) });
  rows.push({
    quote: c.path,
    target: "ours cold",
    ms: await time(() => {
      clearSignatureCaches({ keys: true, results: true });
      clearPckChainCache();
      return verifyQuote(quote, { at, collateral: qvlCol });
    }),
  });
  rows.push({
    quote: c.path,
    target: "ours keys",
    ms: await time(() => {
      clearSignatureCaches({ keys: false, results: true });
      return verifyQuote(quote, { at, collateral: prepared });
    }),
  });
  rows.push({ quote: c.path, target: "ours warm", ms: await time(() => verifyQuote(quote, { at, collateral: prepared })) });
  const dir = vectorPath(c.collateral);
  rows.push({ quote: c.path, target: "ours dir", ms: await time(() => verifyQuote(quote, { at, collateral: dir })) });
  rows.push({
    quote: c.path,
    target: "dir first",
    ms: await time(() => {
      clearCollateralMemo();
      return verifyQuote(quote, { at, collateral: dir });
    }),
  });
}

console.log(`quote verification with collateral, ms per quote (≤${ITER} iterations or ${BUDGET_MS} ms each; Node ${process.version})`);
console.log(`${"quote".padEnd(26)} ${"target".padEnd(10)} ${"ms".padStart(8)} ${"× faster than dcap-qvl".padStart(24)}`);
for (const r of rows) {
  const base = rows.find((x) => x.quote === r.quote && x.target === "dcap-qvl")!.ms;
  console.log(`${r.quote.padEnd(26)} ${r.target.padEnd(10)} ${r.ms.toFixed(3).padStart(8)} ${(r.target === "dcap-qvl" ? "1.0" : (base / r.ms).toFixed(1)).padStart(24)}`);
}
const mean = (t: string) => rows.filter((r) => r.target === t).reduce((a, r) => a + r.ms, 0) / CASES.length;
const q = mean("dcap-qvl");
console.log(
  `mean: dcap-qvl ${q.toFixed(2)} ms; ours cold ${mean("ours cold").toFixed(3)} ms (${(q / mean("ours cold")).toFixed(1)}×), keys ${mean("ours keys").toFixed(3)} ms (${(q / mean("ours keys")).toFixed(1)}×), warm ${mean("ours warm").toFixed(3)} ms (${(q / mean("ours warm")).toFixed(1)}×); dir ${mean("ours dir").toFixed(3)} ms (${(q / mean("ours dir")).toFixed(1)}×), dir first ${mean("dir first").toFixed(3)} ms (${(q / mean("dir first")).toFixed(1)}×)`,
);
