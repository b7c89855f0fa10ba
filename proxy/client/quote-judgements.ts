/**
 * Fresh quotes judged once each. Batched evidence (DESIGN.md §4) gives every connection of a
 * batch the same quote bytes, so a client opening many connections at once (a bridge after a
 * restart, a benchmark) would verify the same signatures and chain once per connection. The
 * judgement of identical bytes under the same trust roots is the same, so it is kept briefly,
 * and concurrent asks share one. Each connection still checks its own proof, report data and
 * identity against its certificate: only the quote's own verification is shared.
 */
import { createHash } from "node:crypto";
import type { TrustRoot } from "../evidence/dcap/roots.js";
import { judgeQuote, judging } from "../evidence/dcap/verify.js";
import { readQuote, type Quote } from "../evidence/dcap/quote.js";
import type { Result } from "../core/result.js";
import type { Verdict } from "../evidence/verdict.js";

/** How long a judgement is reused: well under any validity period it depends on. */
const KEEP_MS = 10_000;
const MAX_ENTRIES = 64;

/** Quotes parsed lately, by SHA-256 of their bytes: a batch's connections all read the same one. */
const parsedLately = new Map<string, { until: number; parsed: Result<Quote> }>();

/** The quote's bytes parsed (or why not), and the key its judgement is kept under. */
export function readFreshQuote(quote: Uint8Array): { key: string; parsed: Result<Quote> } {
  const key = createHash("sha256").update(quote).digest("hex");
  const now = Date.now();
  const hit = parsedLately.get(key);
  if (hit && hit.until > now) return { key, parsed: hit.parsed };
  const parsed = readQuote(quote);
  parsedLately.set(key, { until: now + KEEP_MS, parsed });
  evict(parsedLately, now);
  return { key, parsed };
}

function evict(m: Map<string, { until: number }>, now: number): void {
  for (const [k, e] of m) {
    if (m.size <= MAX_ENTRIES && e.until > now) break;
    m.delete(k);
  }
}

const byRoots = new WeakMap<readonly TrustRoot[], Map<string, { until: number; verdict: Promise<Verdict> }>>();

/** judgeQuote(parsed) under `trustRoots` now, shared with other connections that got the same bytes (`key`, from readFreshQuote). */
export function judgeFreshQuote(key: string, parsed: Result<Quote>, trustRoots: readonly TrustRoot[], at?: Date): Promise<Verdict> {
  // A caller's own clock is a question about that time: never answered from another's.
  if (at) return judgeQuote(parsed, judging({ trustRoots, at }));
  let cache = byRoots.get(trustRoots);
  if (!cache) byRoots.set(trustRoots, (cache = new Map()));
  const now = Date.now();
  const hit = cache.get(key);
  if (hit && hit.until > now) return hit.verdict;
  const verdict = judgeQuote(parsed, judging({ trustRoots }));
  cache.set(key, { until: now + KEEP_MS, verdict });
  // Only an accepted judgement is reused: a refusal is made again next time.
  verdict.then(
    (v) => {
      if (!v.ok) cache.delete(key);
    },
    () => cache.delete(key),
  );
  evict(cache, now);
  return verdict;
}
