import { resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
// Percentile helpers shared by the benchmark modules (scripts/bench/*).
// Percentiles use linear interpolation between closest ranks (the "R-7" / Excel
// PERCENTILE.INC definition), so p50 of an even-sized sample is the mean of the
// two middle values and p0/p100 are the minimum/maximum.

/** Returns a new, ascending copy of `values` with non-finite entries dropped. */
export function sortedFinite(values: readonly number[]): number[] {
  return values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
}

/**
 * The `p`-th percentile (0..100) of an ascending-sorted sample; NaN for an
 * empty sample. Pass the output of `sortedFinite`.
 */
export function percentileSorted(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile out of range: ${p}`);
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (rank - lo);
}

/** The `p`-th percentile (0..100) of an unsorted sample; NaN for an empty one. */
export function percentile(values: readonly number[], p: number): number {
  return percentileSorted(sortedFinite(values), p);
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Count, min, p50, p90, p99, max and mean of a sample (NaN fields when empty). */
export function summarize(values: readonly number[]): Summary {
  const s = sortedFinite(values);
  const n = s.length;
  const mean = n === 0 ? Number.NaN : s.reduce((acc, v) => acc + v, 0) / n;
  return {
    n,
    min: n === 0 ? Number.NaN : (s[0] as number),
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p99: percentileSorted(s, 99),
    max: n === 0 ? Number.NaN : (s[n - 1] as number),
    mean,
  };
}

/** Rounds to `digits` decimals, keeping NaN/Infinity as they are. */
export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Run `selfCheck` when this module is the program (`node dist/scripts/bench/<name>.js --self-check`). */
export function selfCheckWhenMain(moduleUrl: string, name: string, selfCheck: () => Promise<void>): void {
  const invoked = process.argv[1];
  if (invoked === undefined || moduleUrl !== pathToFileURL(resolvePath(invoked)).href) return;
  if (process.argv.includes("--self-check")) {
    selfCheck().catch((e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    });
  } else {
    console.error(`usage: node dist/scripts/bench/${name}.js --self-check`);
    process.exitCode = 2;
  }
}
