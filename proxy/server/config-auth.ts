/**
 * The config's caller authentication (DESIGN.md §10): `auth.mode` and, for `bearer`, the keys
 * file, for `oauth`, the authorization server and this resource. The keys file is read once,
 * here, so a bad line stops `serve` at start rather than at the first caller; only hashes of
 * tokens are in it (`attestable-mcp new-key`).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "../core/errors.js";
import { valueParsers } from "../core/schema.js";

type Get = (k: string) => unknown;
type Src = (k: string) => string;

export interface BearerKey {
  name: string;
  /** SHA-256 of the token string (32 bytes). */
  hash: Buffer;
}

export interface OAuthConfig {
  mode: "oauth";
  /** Exactly as configured: a token's `iss` must equal it, character for character. */
  issuer: string;
  /** null: the jwks_uri of the issuer's metadata. */
  jwksUrl: string | null;
  /** This resource (RFC 8707), exactly as configured: a token's `aud` must hold it. */
  audience: string;
  /** Every one required in each token. */
  scopes: string[];
}

export type AuthConfig = { mode: "none" } | { mode: "bearer"; keysFile: string; keys: BearerKey[] } | OAuthConfig;

/** A key's name: also what the upstream sees in X-Authenticated-Subject, so header-safe. */
export const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const { str, oneOf, url, serviceUrl } = valueParsers((key, source, reason) => {
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

const OAUTH_KEYS = ["auth.oauth.issuer", "auth.oauth.jwksUrl", "auth.oauth.audience", "auth.oauth.scopes"] as const;
/** RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** A URL without a fragment or credentials, kept as written: tokens are compared with the text. */
function plainUrl(key: string, v: unknown, source: string, parse: typeof url): string {
  const u = parse(key, v, source);
  if (u.hash !== "" || u.username !== "" || u.password !== "") throw new ConfigError(key, source, `"${v as string}" must have no #fragment and no user:password@`);
  return v as string;
}

function oauthOf(get: Get, src: Src): OAuthConfig {
  const required = (key: string, what: string): unknown => {
    const v = get(key);
    if (v === null) throw new ConfigError(key, src(key), `required when auth.mode is oauth: ${what}`);
    return v;
  };
  const issuer = plainUrl("auth.oauth.issuer", required("auth.oauth.issuer", "the authorization server's issuer URL"), src("auth.oauth.issuer"), serviceUrl);
  if (new URL(issuer).search !== "") throw new ConfigError("auth.oauth.issuer", src("auth.oauth.issuer"), `"${issuer}" must have no ?query (RFC 8414)`);
  const rawJwks = get("auth.oauth.jwksUrl");
  const jwksUrl = rawJwks === null ? null : plainUrl("auth.oauth.jwksUrl", rawJwks, src("auth.oauth.jwksUrl"), serviceUrl);
  const audience = plainUrl("auth.oauth.audience", required("auth.oauth.audience", "this resource's https: URL, the audience its tokens are for"), src("auth.oauth.audience"), url);
  if (new URL(audience).protocol !== "https:") throw new ConfigError("auth.oauth.audience", src("auth.oauth.audience"), `must be an https: URL (serve answers only over TLS), got "${audience}"`);
  const scopes = get("auth.oauth.scopes");
  const scopesSource = src("auth.oauth.scopes");
  if (!Array.isArray(scopes)) throw new ConfigError("auth.oauth.scopes", scopesSource, `expected a list of scopes, got ${JSON.stringify(scopes)}`);
  for (const s of scopes) {
    if (typeof s !== "string" || !SCOPE_TOKEN.test(s)) throw new ConfigError("auth.oauth.scopes", scopesSource, `${JSON.stringify(s)} is not a scope (printable ASCII, no space, " or \\)`);
  }
  if (new Set(scopes).size !== scopes.length) throw new ConfigError("auth.oauth.scopes", scopesSource, "a scope appears twice");
  return { mode: "oauth", issuer, jwksUrl, audience, scopes: scopes as string[] };
}

export function authOf(get: Get, src: Src): AuthConfig {
  const mode = oneOf("auth.mode", get("auth.mode"), src("auth.mode"), ["none", "bearer", "oauth"] as const);
  if (mode !== "oauth") {
    for (const key of OAUTH_KEYS) {
      const v = get(key);
      if (v !== null && !(Array.isArray(v) && v.length === 0)) throw new ConfigError(key, src(key), `only applies to auth.mode: oauth (auth.mode is ${mode})`);
    }
  }
  const raw = get("auth.bearer.keysFile");
  const source = src("auth.bearer.keysFile");
  if (mode !== "bearer" && raw !== null) throw new ConfigError("auth.bearer.keysFile", source, `only applies to auth.mode: bearer (auth.mode is ${mode})`);
  if (mode === "none") return { mode };
  if (mode === "oauth") return oauthOf(get, src);
  if (raw === null) throw new ConfigError("auth.bearer.keysFile", source, "required when auth.mode is bearer: the file of key names and token hashes");
  const given = str("auth.bearer.keysFile", raw, source);
  // Relative to the working directory, as every path of the config is.
  const keysFile = resolve(given);
  let text: string;
  try {
    text = readFileSync(keysFile, "utf8");
  } catch (e) {
    throw new ConfigError("auth.bearer.keysFile", source, `cannot read ${keysFile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return { mode, keysFile, keys: parseKeys(text, keysFile) };
}
