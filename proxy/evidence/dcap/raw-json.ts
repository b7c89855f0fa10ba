/**
 * Find the exact source text of a top-level member of a JSON object.
 *
 * Intel signs the bytes of the inner `tcbInfo` / `enclaveIdentity` object as served, so the
 * verifier must check the signature over that text, never over a re-serialisation. The body is
 * fully validated by JSON.parse first; this scanner then only has to find value boundaries.
 * A duplicated top-level key is refused: JSON.parse keeps the last one, a scanner the first,
 * and the signed text and the parsed object must be the same member.
 */
import { CollateralError } from "../../core/errors.js";

function skipWs(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i++;
  }
  return i;
}

/** Index just past the string starting at s[i] === '"'. */
function endOfString(s: string, i: number): number {
  for (i++; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i + 1;
  }
  return -1;
}

/** Index just past the JSON value starting at s[i] (the text is known to be valid JSON). */
function endOfValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return endOfString(s, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    for (; i < s.length; i++) {
      const d = s[i];
      if (d === '"') {
        i = endOfString(s, i) - 1;
        if (i < 0) return -1;
      } else if (d === "{" || d === "[") depth++;
      else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return -1;
  }
  // number, true, false, null
  while (i < s.length && !/[\s,}\]]/.test(s[i]!)) i++;
  return i;
}

export interface RawMembers {
  /** The parsed body. */
  value: Record<string, unknown>;
  /** Exact source text of each top-level member's value. */
  raw: Map<string, string>;
}

export function rawMembers(text: string, what: string): RawMembers {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CollateralError("COLLATERAL_JSON", `${what}: not valid JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CollateralError("COLLATERAL_JSON", `${what}: expected a JSON object`);
  }
  const raw = new Map<string, string>();
  let i = skipWs(text, 0) + 1; // past '{'
  for (;;) {
    i = skipWs(text, i);
    if (text[i] === "}") break;
    if (text[i] === ",") i = skipWs(text, i + 1);
    const keyEnd = endOfString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWs(text, keyEnd) + 1; // past ':'
    i = skipWs(text, i);
    const end = endOfValue(text, i);
    if (raw.has(key)) throw new CollateralError("COLLATERAL_JSON", `${what}: duplicate key "${key}"`);
    raw.set(key, text.slice(i, end));
    i = end;
  }
  return { value: value as Record<string, unknown>, raw };
}
