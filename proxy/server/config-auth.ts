/**
 * The config's caller authentication (DESIGN.md §10): `auth.mode` and, for `bearer`, the keys
 * file. The file is read once, here, so a bad line stops `serve` at start rather than at the
 * first caller; only hashes of tokens are in it (`attestable-mcp new-key`).
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../core/errors.js";
import { valueParsers } from "../core/schema.js";

type Get = (k: string) => unknown;
type Src = (k: string) => string;

export interface BearerKey {
  name: string;
  /** SHA-256 of the token string (32 bytes). */
  hash: Buffer;
}

export type AuthConfig = { mode: "none" } | { mode: "bearer"; keysFile: string; keys: BearerKey[] };

/** A key's name: also what the upstream sees in X-Authenticated-Subject, so header-safe. */
export const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const { str, oneOf } = valueParsers((key, source, reason) => {
  throw new ConfigError(key, source, reason);
});

/** The keys of a keys file; every line not a key, a comment or blank is refused by its number. */
export function parseKeys(text: string, file: string): BearerKey[] {
  const keys: BearerKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `${file}:${i + 1}`;
    const m = /^(\S+)\s+([0-9a-fA-F]{64})$/.exec(line);
    if (!m) throw new ConfigError("auth.bearer.keysFile", where, 'expected "NAME SHA256-HEX-OF-TOKEN" (64 hex digits), a # comment or a blank line');
    const name = m[1]!;
    if (!KEY_NAME.test(name)) throw new ConfigError("auth.bearer.keysFile", where, `key name ${JSON.stringify(name)} is not 1 to 64 of A-Z a-z 0-9 . _ -`);
    if (keys.some((k) => k.name === name)) throw new ConfigError("auth.bearer.keysFile", where, `key name ${name} appears twice`);
    keys.push({ name, hash: Buffer.from(m[2]!, "hex") });
  }
  if (keys.length === 0) throw new ConfigError("auth.bearer.keysFile", file, "holds no key: nobody could call");
  return keys;
}

/** `configFile`: the YAML file, when there is one; a keys file set there is relative to it. */
export function authOf(get: Get, src: Src, configFile: string | null): AuthConfig {
  const mode = oneOf("auth.mode", get("auth.mode"), src("auth.mode"), ["none", "bearer"] as const);
  const raw = get("auth.bearer.keysFile");
  const source = src("auth.bearer.keysFile");
  if (mode === "none") {
    if (raw !== null) throw new ConfigError("auth.bearer.keysFile", source, "only applies to auth.mode: bearer (auth.mode is none)");
    return { mode };
  }
  if (raw === null) throw new ConfigError("auth.bearer.keysFile", source, "required when auth.mode is bearer: the file of key names and token hashes");
  const given = str("auth.bearer.keysFile", raw, source);
  const keysFile = configFile !== null && source === configFile ? resolve(dirname(configFile), given) : resolve(given);
  let text: string;
  try {
    text = readFileSync(keysFile, "utf8");
  } catch (e) {
    throw new ConfigError("auth.bearer.keysFile", source, `cannot read ${keysFile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return { mode, keysFile, keys: parseKeys(text, keysFile) };
}
