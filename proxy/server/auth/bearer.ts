/**
 * Bearer keys (DESIGN.md §10): a caller presents `Authorization: Bearer <token>`; the SHA-256 of
 * the token is compared with every stored hash in constant time, so neither the token nor which
 * key came close shows in the timing. The key's name is the caller from then on; the credential
 * itself is consumed here and goes no further (not upstream, not into a log).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { BearerKey } from "../config-auth.js";
import { createGuard, presentedToken, type AuthRefusalReason, type Guard, type Verdict } from "./guard.js";

const MISSING: Verdict = { refused: "missing", status: 401, message: "authentication required: send Authorization: Bearer <token>", challenge: "Bearer" };
const INVALID: Verdict = { refused: "invalid", status: 401, message: "invalid bearer token", challenge: 'Bearer error="invalid_token"' };

export function createBearerGuard(keys: readonly BearerKey[], log: Logger, onRefused: (reason: AuthRefusalReason) => void = () => {}): Guard {
  const check = (req: IncomingMessage): Verdict => {
    const token = presentedToken(req);
    if (token === "none") return MISSING;
    if (token === "malformed") return INVALID;
    const hash = createHash("sha256").update(token, "utf8").digest();
    let found: string | null = null;
    // Every key is compared, found or not: the time taken says nothing about which one matched.
    for (const k of keys) if (timingSafeEqual(hash, k.hash) && found === null) found = k.name;
    return found === null ? INVALID : { subject: found, principal: `key:${found}` };
  };
  return createGuard(check, log, onRefused);
}
