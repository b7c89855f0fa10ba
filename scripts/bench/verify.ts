/**
 * Quote verification vs @phala/dcap-qvl: runs the existing `dist/scripts/bench-verify.js` (the
 * measurement behind `npm run bench:verify`) as a child with a bounded iteration count and time
 * budget, and reads its last line ("mean: dcap-qvl X ms; ours cold Y ms (…), keys Z ms (…), warm
 * W ms (…); dir D ms (…), dir first F ms (…)").
 */
import type { Children } from "./proc.js";

export interface VerifyResult {
  dcapQvlMs: number;
  coldMs: number;
  keysMs: number;
  warmMs: number;
  /** `verifyQuote(q, { collateral: DIR })`: remembered, and with the memory cleared before each call. */
  dirMs: number;
  dirFirstMs: number;
  iterations: number;
  budgetMs: number;
  line: string;
}

export function parseVerifyLine(text: string): Omit<VerifyResult, "iterations" | "budgetMs"> {
  const line = text
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("mean:"))
    .pop();
  const m = line ? /dcap-qvl ([\d.]+) ms; ours cold ([\d.]+) ms .*keys ([\d.]+) ms .*warm ([\d.]+) ms .*dir ([\d.]+) ms .*dir first ([\d.]+) ms/.exec(line) : null;
  if (!line || !m) throw new Error(`bench-verify: no "mean:" line in its output:\n${text.slice(-1500)}`);
  return { dcapQvlMs: Number(m[1]), coldMs: Number(m[2]), keysMs: Number(m[3]), warmMs: Number(m[4]), dirMs: Number(m[5]), dirFirstMs: Number(m[6]), line };
}

export async function measureVerify(children: Children, script: string, opts: { iterations: number; budgetMs: number; timeoutMs: number }): Promise<VerifyResult> {
  const env = { ...process.env, BENCH_ITER: String(opts.iterations), BENCH_BUDGET_MS: String(opts.budgetMs) };
  const proc = children.spawn("bench-verify", process.execPath, [script], { env });
  let out = "";
  proc.child.stdout!.on("data", (b: Buffer) => (out += b.toString("utf8")));
  const killer = setTimeout(() => void children.stop(proc, 500), opts.timeoutMs);
  try {
    const code = await proc.exited;
    if (code !== 0) throw new Error(`bench-verify exited with ${code}: ${proc.output().slice(-1500)}`);
    return { ...parseVerifyLine(out), iterations: opts.iterations, budgetMs: opts.budgetMs };
  } finally {
    clearTimeout(killer);
  }
}
