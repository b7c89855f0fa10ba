/**
 * Bearer keys (DESIGN.md §10): a caller presents `Authorization: Bearer <token>`; the SHA-256 of
 * the token is compared with every stored hash in constant time, so neither the token nor which
 * key came close shows in the timing. The key's name is the caller from then on; the credential
 * itself is consumed here and goes no further (not upstream, not into a log).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { jsonRpcErrorBody, sendJsonRpcError } from "../../core/jsonrpc.js";
import type { BearerKey } from "../config-auth.js";

const subjects = new WeakMap<IncomingMessage, string>();

/** The key name a request authenticated with; null when it did not (or auth is none). */
export function subjectOf(req: IncomingMessage): string | null {
  return subjects.get(req) ?? null;
}

export interface BearerGuard {
  /** True when the request may go on (its subject is then set); false when it has been answered 401. */
  admit(req: IncomingMessage, res: ServerResponse): boolean;
  admitUpgrade(req: IncomingMessage, socket: Duplex): boolean;
}

type Verdict = { name: string } | { refused: "missing" | "invalid" };

function challenge(presented: boolean): string {
  return presented ? 'Bearer error="invalid_token"' : "Bearer";
}

const MESSAGE = { missing: "authentication required: send Authorization: Bearer <token>", invalid: "invalid bearer token" } as const;

export function createBearerGuard(keys: readonly BearerKey[], log: Logger): BearerGuard {
  const check = (req: IncomingMessage): Verdict => {
    const header = req.headers.authorization;
    const m = typeof header === "string" ? /^Bearer +(\S+) *$/i.exec(header) : null;
    // A header of another scheme presents no bearer token: the plain challenge, no error code (RFC 6750 §3.1).
    if (!m) return { refused: typeof header === "string" && /^Bearer\b/i.test(header) ? "invalid" : "missing" };
    const hash = createHash("sha256").update(m[1]!, "utf8").digest();
    let found: string | null = null;
    // Every key is compared, found or not: the time taken says nothing about which one matched.
    for (const k of keys) if (timingSafeEqual(hash, k.hash) && found === null) found = k.name;
    return found === null ? { refused: "invalid" } : { name: found };
  };
  const accept = (req: IncomingMessage, v: Verdict): v is { name: string } => {
    if ("refused" in v) {
      log.warn({ path: (req.url ?? "/").split("?", 1)[0], reason: v.refused }, "bearer credential refused");
      return false;
    }
    subjects.set(req, v.name);
    // The credential is for this proxy: an HTTP upstream gets X-Authenticated-Subject instead.
    delete req.headers.authorization;
    const raw = req.rawHeaders;
    for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i]!.toLowerCase() === "authorization") raw.splice(i, 2);
    return true;
  };
  return {
    admit(req, res) {
      const v = check(req);
      if (accept(req, v)) return true;
      req.resume();
      sendJsonRpcError(res, 401, MESSAGE[(v as { refused: "missing" | "invalid" }).refused], { "WWW-Authenticate": challenge(v.refused === "invalid") });
      return false;
    },
    admitUpgrade(req, socket) {
      const v = check(req);
      if (accept(req, v)) return true;
      const body = jsonRpcErrorBody(MESSAGE[v.refused]);
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: ${challenge(v.refused === "invalid")}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return false;
    },
  };
}
