/**
 * The authorization server's signing keys for `auth.mode: oauth`: its JWKS, found through its
 * metadata (RFC 8414, then OpenID discovery) unless `auth.oauth.jwksUrl` names it, and kept as its
 * Cache-Control says. Fetches are bounded: at most one a minute when all goes well (a short or
 * absent max-age, an unknown `kid`), one per retry interval after a failure, whatever callers send.
 * When the keys cannot be had and none are kept, verification fails closed (AuthKeysError).
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { AuthKeysError, type AuthKeysCode } from "../../core/errors.js";
import { isLoopback } from "../../core/schema.js";

export interface KeySourceOptions {
  issuer: string;
  jwksUrl: string | null;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
  /** One metadata or JWKS request, whole (default 5 s). */
  timeoutMs?: number;
  /** The least time between two fetches of a JWKS that was fetched (default a minute). */
  minIntervalMs?: number;
  /** The least time between a failed fetch and the next (default 10 s). */
  retryMs?: number;
  /** How long expired keys stay in use while the JWKS cannot be fetched (default an hour). */
  staleMs?: number;
}

export interface KeySource {
  /** The keys to check a token against; AuthKeysError when there are none to be had. */
  current(): Promise<JWTVerifyGetKey>;
  /**
   * After a token named a key that is not in the set: the set fetched again if the last fetch is
   * old enough (else null: the token's key stays unknown).
   */
  refreshForUnknownKey(): Promise<JWTVerifyGetKey | null>;
  /** Where the JWKS is fetched from; null until known. */
  jwksUri(): string | null;
}

const MAX_BODY = 512 * 1024;
const DEFAULT_LIFETIME_MS = 5 * 60_000;
const MAX_LIFETIME_MS = 24 * 3_600_000;

/** max-age of a Cache-Control value in ms (0 for no-store / no-cache); null when it says none. */
export function maxAgeMs(cacheControl: string | null): number | null {
  if (cacheControl === null) return null;
  const directives = cacheControl
    .toLowerCase()
    .split(",")
    .map((d) => d.trim());
  if (directives.some((d) => d === "no-store" || d === "no-cache")) return 0;
  for (const d of directives) {
    const m = /^max-age\s*=\s*"?(\d{1,10})"?$/.exec(d);
    if (m) return Number(m[1]) * 1000;
  }
  return null;
}

/** Where an issuer's metadata may be: RFC 8414 §3.1 (well-known before the path), then OpenID Connect discovery (after it). */
export function metadataUrls(issuer: string): string[] {
  const u = new URL(issuer);
  const path = u.pathname.replace(/\/$/, "");
  return [`${u.origin}/.well-known/oauth-authorization-server${path}`, `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`];
}

async function getJson(url: string, code: AuthKeysCode, what: string, timeoutMs: number): Promise<{ doc: unknown; cacheControl: string | null }> {
  let res: Response;
  try {
    // No redirects: a key source is where it was configured or announced, not where it points on to.
    res = await fetch(url, { redirect: "error", headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as Error & { cause?: { code?: string; message?: string } }).cause;
    throw new AuthKeysError(code, `${what} ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (res.status !== 200 || declared > MAX_BODY || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw new AuthKeysError(code, `${what} ${url}: ${res.status !== 200 ? `HTTP ${res.status}` : `larger than ${MAX_BODY} bytes`}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > MAX_BODY) throw new AuthKeysError(code, `${what} ${url}: larger than ${MAX_BODY} bytes`);
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof AuthKeysError) throw e;
    throw new AuthKeysError(code, `${what} ${url}: ${(e as Error).message}`);
  }
  try {
    return { doc: JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown, cacheControl: res.headers.get("cache-control") };
  } catch {
    throw new AuthKeysError(code === "AUTH_JWKS_UNAVAILABLE" ? "AUTH_JWKS_INVALID" : "AUTH_METADATA_INVALID", `${what} ${url}: not JSON`);
  }
}

/** The jwks_uri of the issuer's metadata, checked to be that issuer's (RFC 8414 §3.3). */
async function discover(issuer: string, timeoutMs: number): Promise<string> {
  const problems: AuthKeysError[] = [];
  for (const url of metadataUrls(issuer)) {
    try {
      const { doc } = await getJson(url, "AUTH_METADATA_UNAVAILABLE", "metadata", timeoutMs);
      const m = (doc ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
      if (m.issuer !== issuer) throw new AuthKeysError("AUTH_METADATA_INVALID", `metadata ${url}: issuer ${JSON.stringify(m.issuer)} is not the configured ${JSON.stringify(issuer)}`);
      let jwks: URL | null = null;
      try {
        jwks = typeof m.jwks_uri === "string" ? new URL(m.jwks_uri) : null;
      } catch {
        // refused below
      }
      if (!jwks || !(jwks.protocol === "https:" || (jwks.protocol === "http:" && isLoopback(jwks.hostname)))) {
        throw new AuthKeysError("AUTH_METADATA_INVALID", `metadata ${url}: jwks_uri ${JSON.stringify(m.jwks_uri)} is not an https: URL (http: only on loopback)`);
      }
      return m.jwks_uri as string;
    } catch (e) {
      problems.push(e as AuthKeysError);
    }
  }
  const invalid = problems.find((p) => p.code === "AUTH_METADATA_INVALID");
  throw new AuthKeysError(invalid ? "AUTH_METADATA_INVALID" : "AUTH_METADATA_UNAVAILABLE", problems.map((p) => p.message).join("; "));
}

/** The asymmetric keys of a JWKS document: a shared-secret key has no place in a public key set. */
function keySet(doc: unknown, url: string): JSONWebKeySet {
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new AuthKeysError("AUTH_JWKS_INVALID", `JWKS ${url}: no "keys" list`);
  const usable = keys.filter((k): k is JSONWebKeySet["keys"][number] => typeof k === "object" && k !== null && ["RSA", "EC", "OKP"].includes((k as { kty?: unknown }).kty as string));
  if (usable.length === 0) throw new AuthKeysError("AUTH_JWKS_INVALID", `JWKS ${url}: no RSA, EC or OKP key`);
  return { keys: usable };
}

export function createKeySource(o: KeySourceOptions): KeySource {
  const now = o.now ?? Date.now;
  const timeoutMs = o.timeoutMs ?? 5_000;
  const minIntervalMs = o.minIntervalMs ?? 60_000;
  const retryMs = o.retryMs ?? 10_000;
  const staleMs = o.staleMs ?? 3_600_000;
  let uri: string | null = o.jwksUrl;
  let cached: { resolve: JWTVerifyGetKey; fetchedAt: number; expiresAt: number } | null = null;
  let failedAt = Number.NEGATIVE_INFINITY;
  let lastError: AuthKeysError | null = null;
  let inflight: Promise<JWTVerifyGetKey> | null = null;

  const fetchKeys = async (): Promise<JWTVerifyGetKey> => {
    try {
      uri ??= await discover(o.issuer, timeoutMs);
      const { doc, cacheControl } = await getJson(uri, "AUTH_JWKS_UNAVAILABLE", "JWKS", timeoutMs);
      const resolve = createLocalJWKSet(keySet(doc, uri));
      const lifetime = Math.min(MAX_LIFETIME_MS, Math.max(minIntervalMs, maxAgeMs(cacheControl) ?? DEFAULT_LIFETIME_MS));
      const t = now();
      cached = { resolve, fetchedAt: t, expiresAt: t + lifetime };
      lastError = null;
      return resolve;
    } catch (e) {
      failedAt = now();
      lastError = e instanceof AuthKeysError ? e : new AuthKeysError("AUTH_JWKS_INVALID", `JWKS ${uri ?? o.issuer}: ${(e as Error).message}`);
      // Announced, not configured: the metadata may have moved it.
      if (o.jwksUrl === null) uri = null;
      throw lastError;
    }
  };
  // One fetch at a time, shared by every request that waits for it.
  const refresh = (): Promise<JWTVerifyGetKey> => {
    inflight ??= fetchKeys().finally(() => {
      inflight = null;
    });
    return inflight;
  };

  return {
    async current() {
      if (cached && now() < cached.expiresAt) return cached.resolve;
      if (inflight || now() - failedAt >= retryMs) {
        try {
          return await refresh();
        } catch {
          // kept keys below, or the failure
        }
      }
      if (cached && now() < cached.expiresAt + staleMs) return cached.resolve;
      throw lastError ?? new AuthKeysError("AUTH_JWKS_UNAVAILABLE", `JWKS ${uri ?? o.issuer}: not fetched yet`);
    },
    async refreshForUnknownKey() {
      if (!inflight) {
        if (cached && now() - cached.fetchedAt < minIntervalMs) return null;
        if (now() - failedAt < retryMs) return null;
      }
      try {
        return await refresh();
      } catch {
        return null;
      }
    },
    jwksUri: () => uri,
  };
}
