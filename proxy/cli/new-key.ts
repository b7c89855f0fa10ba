/**
 * `new-key`: a bearer key for `auth.mode: bearer`. The token is printed once and stored nowhere;
 * the keys file gets its name and the SHA-256 of the token string, which is all `serve` needs.
 */
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, openSync, closeSync, readFileSync } from "node:fs";
import { ConfigError } from "../core/errors.js";
import { KEY_NAME, parseKeys } from "../server/config-auth.js";

/** Appends the key to `file` (created 0600) and returns the token. */
export function newKey(name: string, file: string): string {
  if (!KEY_NAME.test(name)) throw new ConfigError("NAME", "new-key", `${JSON.stringify(name)} is not 1 to 64 of A-Z a-z 0-9 . _ -`);
  // "wx" never truncates: an existing file keeps its keys and its mode.
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new ConfigError("--keys-file", file, `cannot create it (${(e as NodeJS.ErrnoException).code})`);
  }
  const text = readFileSync(file, "utf8");
  // A file serve would refuse is refused here too, before a key is added to it.
  const known = text.trim() === "" ? [] : parseKeys(text, file);
  if (known.some((k) => k.name === name)) throw new ConfigError("NAME", file, `already holds a key named ${name}`);
  const token = randomBytes(32).toString("base64url");
  const hash = createHash("sha256").update(token, "utf8").digest("hex");
  appendFileSync(file, `${text === "" || text.endsWith("\n") ? "" : "\n"}${name} ${hash}\n`);
  return token;
}
