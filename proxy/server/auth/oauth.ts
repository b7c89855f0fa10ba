/**
 * `auth.mode: oauth` (DESIGN.md §10): serve as an OAuth 2.1 resource server. A caller presents a
 * JWT access token; it is good when an asymmetric algorithm, a key of the issuer's JWKS, `iss`,
 * `aud` (this resource), `exp` and `nbf` (give or take the clock skew) all say so, it names a
 * subject the proxy can pass on, and it carries every configured scope. The token's `sub` is the
 * caller from then on; the token itself goes no further.
 */
import type { IncomingMessage } from "node:http";
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import type { Logger } from "pino";
import { AuthKeysError } from "../../core/errors.js";
import type { OAuthConfig } from "../config-auth.js";
import { createGuard, presentedToken, type AuthRefusalReason, type Guard, type Verdict } from "./guard.js";
import { createKeySource, type KeySource } from "./jwks.js";
import { PROTECTED_RESOURCE_PATH } from "./resource-metadata.js";

/** Signatures by a key pair only: `none` and HMAC (whose secret a public key could be made to play) never. */
export const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];

/** Seconds either way that `exp` and `nbf` are given for clocks that disagree. */
export const CLOCK_SKEW_S = 30;

/** A `sub` that X-Authenticated-Subject carries as it is and that a principal holds unambiguously: visible ASCII, no space. */
export const SUBJECT = /^[\x21-\x7e]{1,256}$/;

export interface OAuthVerifier {
  verify(token: string): Promise<Verdict>;
}

/** Where the protected-resource metadata is, as the challenge announces it: this resource's origin. */
export function resourceMetadataUrl(audience: string): string {
  return new URL(PROTECTED_RESOURCE_PATH, audience).href;
}

function quoted(s: string): string {
  return `"${s.replace(/["\\]/g, "\\$&")}"`;
}

/** The scopes a token grants: `scope` (space-separated, RFC 9068), else `scp` (a list or a string). */
export function grantedScopes(p: JWTPayload): Set<string> {
  const raw = typeof p.scope === "string" ? p.scope : p.scp;
  const list = typeof raw === "string" ? raw.split(" ") : Array.isArray(raw) ? raw.filter((s): s is string => typeof s === "string") : [];
  return new Set(list.filter((s) => s !== ""));
}

/** Why jose refused a token, as the challenge's error_description and the log say it. */
function why(e: unknown): string {
  if (e instanceof errors.JWTExpired) return "the token has expired";
  if (e instanceof errors.JWTClaimValidationFailed) return `the token's ${e.claim} claim is ${e.reason === "missing" ? "missing" : "not accepted"}`;
  if (e instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not allowed";
  if (e instanceof errors.JWKSNoMatchingKey) return "the token's signing key is not in the issuer's key set";
  if (e instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (e instanceof errors.JWTInvalid || e instanceof errors.JWSInvalid || e instanceof errors.JOSENotSupported) return "the token is not a signed JWT this server accepts";
  return "the token is not valid";
}

export function createOAuthVerifier(cfg: OAuthConfig, keys: KeySource, now: () => number = Date.now): OAuthVerifier {
  const metadata = `resource_metadata=${quoted(resourceMetadataUrl(cfg.audience))}`;
  const wanted = cfg.scopes.join(" ");
  const invalid = (detail: string): Verdict => ({
    refused: "invalid",
    status: 401,
    message: `invalid access token: ${detail}`,
    challenge: `Bearer error="invalid_token", error_description=${quoted(detail)}, ${metadata}`,
    detail,
  });
  const check = (token: string, resolve: JWTVerifyGetKey): Promise<JWTPayload> =>
    jwtVerify(token, resolve, {
      issuer: cfg.issuer,
      audience: cfg.audience,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_SKEW_S,
      requiredClaims: ["exp", "sub"],
      currentDate: new Date(now()),
    }).then((r) => r.payload);

  return {
    async verify(token) {
      // Garbage and disallowed algorithms are refused before any key is looked up (or fetched).
      let alg: unknown;
      try {
        alg = token.split(".").length === 3 ? decodeProtectedHeader(token).alg : undefined;
      } catch {
        alg = undefined;
      }
      if (alg === undefined) return invalid("the token is not a signed JWT this server accepts");
      if (typeof alg !== "string" || !ALGORITHMS.includes(alg)) return invalid("the token's algorithm is not allowed");
      let payload: JWTPayload;
      try {
        try {
          payload = await check(token, await keys.current());
        } catch (e) {
          if (!(e instanceof errors.JWKSNoMatchingKey)) throw e;
          // A key the issuer added since the set was fetched; the refetch is rate-limited.
          const fresh = await keys.refreshForUnknownKey();
          if (!fresh) throw e;
          payload = await check(token, fresh);
        }
      } catch (e) {
        if (e instanceof AuthKeysError) {
          return { refused: "keys_unavailable", status: 503, message: "the authorization server's keys are unavailable: try again later", challenge: null, detail: e.message };
        }
        return invalid(why(e));
      }
      if (typeof payload.sub !== "string" || !SUBJECT.test(payload.sub)) return invalid("the token's subject is not 1 to 256 visible ASCII characters");
      const granted = grantedScopes(payload);
      const lacking = cfg.scopes.filter((s) => !granted.has(s));
      if (lacking.length > 0) {
        return {
          refused: "insufficient_scope",
          status: 403,
          message: `the access token lacks the scope ${lacking.join(" ")}`,
          challenge: `Bearer error="insufficient_scope", scope=${quoted(wanted)}, ${metadata}`,
          detail: `lacking ${lacking.join(" ")}`,
        };
      }
      return { subject: payload.sub, principal: `sub:${payload.sub}` };
    },
  };
}

export function createOAuthGuard(cfg: OAuthConfig, log: Logger, onRefused: (reason: AuthRefusalReason) => void = () => {}, keys?: KeySource): Guard {
  const source = keys ?? createKeySource({ issuer: cfg.issuer, jwksUrl: cfg.jwksUrl });
  const verifier = createOAuthVerifier(cfg, source);
  // Fetched at start, so that an unreachable or misconfigured authorization server shows in the
  // log before the first caller meets a 503.
  source.current().then(
    () => log.info({ jwksUri: source.jwksUri() }, "authorization server keys fetched"),
    (e: Error) => log.warn({ err: e.message }, "authorization server keys not available at start: requests with a token get 503 until they are"),
  );
  const scope = cfg.scopes.length > 0 ? `, scope=${quoted(cfg.scopes.join(" "))}` : "";
  const missing: Verdict = {
    refused: "missing",
    status: 401,
    message: "authentication required: send Authorization: Bearer <access token>",
    challenge: `Bearer resource_metadata=${quoted(resourceMetadataUrl(cfg.audience))}${scope}`,
  };
  const check = (req: IncomingMessage): Verdict | Promise<Verdict> => {
    const token = presentedToken(req);
    if (token === "none") return missing;
    return verifier.verify(token === "malformed" ? "" : token);
  };
  return createGuard(check, log, onRefused);
}
