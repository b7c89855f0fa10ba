/**
 * What every caller authentication shares (DESIGN.md §10): the bearer credential as a request
 * presents it, the caller a request authenticated as, and the refusal, written to a response or
 * to an upgrade's socket. A mode (bearer keys, OAuth) says only whether a token is good; the guard
 * answers, counts and logs, and a refused request never reaches the upstream.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { sendJsonRpcError } from "../../core/jsonrpc.js";
import { answerUpgrade } from "../admission.js";

/** Who a request authenticated as: `subject` for logs and X-Authenticated-Subject, `principal` for sessions and shares. */
export interface Caller {
  subject: string;
  principal: string;
}

/** Why a request is refused; the reason labels the metric and the log line. */
export type AuthRefusalReason = "missing" | "invalid" | "insufficient_scope" | "keys_unavailable";

export interface Refusal {
  refused: AuthRefusalReason;
  status: 401 | 403 | 503;
  message: string;
  /** The WWW-Authenticate value; null: none (a 503 is no challenge). */
  challenge: string | null;
  /** Said to the log, with the reason: the failed check (never the token). */
  detail?: string;
}

export type Verdict = Caller | Refusal;

const callers = new WeakMap<IncomingMessage, Caller>();

/** The subject a request authenticated as; null when it did not (or auth is none). */
export function subjectOf(req: IncomingMessage): string | null {
  return callers.get(req)?.subject ?? null;
}

/** `key:NAME` or `sub:SUBJECT`: the caller as sessions and shares count it; null when unauthenticated. */
export function authPrincipalOf(req: IncomingMessage): string | null {
  return callers.get(req)?.principal ?? null;
}

/**
 * The token of `Authorization: Bearer <token>`; "none" when no bearer credential is presented (no
 * header, or one of another scheme: then the plain challenge, no error code, RFC 6750 §3.1);
 * "malformed" for a Bearer header that holds no single token.
 */
export function presentedToken(req: IncomingMessage): string | "none" | "malformed" {
  const header = req.headers.authorization;
  if (typeof header !== "string") return "none";
  const m = /^Bearer +(\S+) *$/i.exec(header);
  if (m) return m[1]!;
  return /^Bearer\b/i.test(header) ? "malformed" : "none";
}

export interface Guard {
  /** Calls `go` when the request may go on (its caller is then set); otherwise answers it. */
  admit(req: IncomingMessage, res: ServerResponse, go: () => void): void;
  admitUpgrade(req: IncomingMessage, socket: Duplex, go: () => void): void;
}

/** A 503 says when to come back: the keys are not retried sooner than that anyway. */
const RETRY_AFTER_S = "10";

function refusalHeaders(r: Refusal): Record<string, string> {
  return { ...(r.challenge === null ? {} : { "WWW-Authenticate": r.challenge }), ...(r.status === 503 ? { "Retry-After": RETRY_AFTER_S } : {}) };
}

/**
 * A guard over `check`, which may answer at once (bearer keys) or later (a token whose keys are
 * being fetched). `onRefused` counts; the log line names the path and reason, never the token.
 */
export function createGuard(check: (req: IncomingMessage) => Verdict | Promise<Verdict>, log: Logger, onRefused: (reason: AuthRefusalReason) => void): Guard {
  const accept = (req: IncomingMessage, v: Verdict): v is Caller => {
    if ("refused" in v) {
      onRefused(v.refused);
      const line = { path: (req.url ?? "/").split("?", 1)[0], reason: v.refused, ...(v.detail ? { check: v.detail } : {}) };
      if (v.status === 503) log.warn(line, "credential not checked: the authorization server's keys are unavailable");
      else log.warn(line, "credential refused");
      return false;
    }
    callers.set(req, v);
    // The credential is for this proxy: an HTTP upstream gets X-Authenticated-Subject instead.
    delete req.headers.authorization;
    const raw = req.rawHeaders;
    for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i]!.toLowerCase() === "authorization") raw.splice(i, 2);
    return true;
  };
  const failed = (e: unknown): Refusal => {
    log.error({ err: (e as Error).message }, "credential check failed");
    return { refused: "keys_unavailable", status: 503, message: "the credential could not be checked", challenge: null };
  };
  const run = (req: IncomingMessage, then: (v: Verdict) => void): void => {
    let v: Verdict | Promise<Verdict>;
    try {
      v = check(req);
    } catch (e) {
      return then(failed(e));
    }
    if (v instanceof Promise) v.then(then, (e: unknown) => then(failed(e)));
    else then(v);
  };
  return {
    admit(req, res, go) {
      run(req, (v) => {
        // The caller went away while its token was checked: nothing to forward, nothing to answer.
        if (req.socket.destroyed) return;
        if (accept(req, v)) return go();
        req.resume();
        sendJsonRpcError(res, v.status, v.message, refusalHeaders(v));
      });
    },
    admitUpgrade(req, socket, go) {
      // Node's HTTP server has let go of an upgraded socket: a reset while the token is checked is ours to absorb.
      const ignore = (): void => {};
      socket.on("error", ignore);
      run(req, (v) => {
        socket.off("error", ignore);
        if (socket.destroyed) return;
        if (accept(req, v)) return go();
        answerUpgrade(socket, v.status, v.message, refusalHeaders(v));
      });
    },
  };
}
