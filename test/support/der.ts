/** Test-side DER builders and assertions, independent of the reader under test. */
import assert from "node:assert/strict";
import { DerError } from "../../proxy/core/errors.js";

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const h = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));

/** DER encoding of tag + the concatenated parts. */
export function enc(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const content = Buffer.concat(parts);
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return new Uint8Array([tag, ...len, ...content]);
}

/** `f` throws a DerError with this code (and a message matching, when given). */
export function throwsDer(f: () => unknown, code: string, message?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof DerError, `expected DerError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}
