/**
 * Prepared collateral remembered by path and file identity, so that `verifyQuote(q, { collateral:
 * DIR })` costs a few stats instead of reading and parsing seven files and their certificates on
 * every call. Every call stats each file it would read; any change of device, inode, size,
 * modification or change time (a file rewritten, replaced or renamed over) reads and prepares
 * the whole set again. A file that cannot be stat'ed fails the call, as reading it would: a
 * deleted file never falls back to the copy in memory. Bounded: the few most recently used paths.
 */
import { resolve } from "node:path";
import type { Collateral } from "./collateral.js";

/** The part of a stat result the identity is made of. */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

interface Entry {
  identity: string;
  collateral: Collateral;
}

export function identityOf(stats: readonly FileIdentity[]): string {
  return stats.map((s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`).join("|");
}

/** Least recently used first: a Map keeps insertion order, and a hit re-inserts. */
export class CollateralMemo {
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();

  constructor(max = 4) {
    this.#max = max;
  }

  /** The key for a path as given: relative paths are the same file wherever they were resolved from. */
  key(path: string): string {
    return resolve(path);
  }

  get(key: string, identity: string): Collateral | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    this.#entries.delete(key);
    if (e.identity !== identity) return undefined;
    this.#entries.set(key, e);
    return e.collateral;
  }

  /** `identity` is the one stat'ed before reading: a file changed while being read is read again next time. */
  set(key: string, identity: string, collateral: Collateral): void {
    this.#entries.delete(key);
    this.#entries.set(key, { identity, collateral });
    while (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value as string);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
