/** The verdict on one connection: the certificate's appraisal plus this connection's freshness. */
import type { FreshnessMode } from "../core/protocol.js";
import type { Appraisal } from "../evidence/appraise.js";
import { outcome, type Check } from "../evidence/verdict.js";

export interface FreshnessResult {
  mode: FreshnessMode;
  ok: boolean;
  detail: string;
  /** The nonce this client sent (hex), or null (mode certificate, or nothing was asked). */
  nonce: string | null;
  /** This connection's TLS exporter value as computed on the client's end (hex; mode exporter). */
  exporter: string | null;
  /** The server stayed busy (429 / 503) past the deadline: temporary, not a failed check of its evidence. */
  busy?: true;
}

export interface ConnectionVerdict extends Appraisal {
  freshness: FreshnessResult;
  /** SHA-256 of the peer certificate's DER, hex. */
  fingerprint: string;
  /** The certificate's appraisal came from the verdict cache (freshness never does). */
  cached: boolean;
}

/** An appraisal with this connection's freshness checks appended; `ok` and `failed` count them. */
export function connectionVerdict(a: Appraisal, freshness: FreshnessResult, extra: Check[], fingerprint: string, cached: boolean): ConnectionVerdict {
  const checks = [...a.checks, ...extra];
  const { ok, failed } = outcome(checks, a.ok, freshness.ok);
  return {
    ...a,
    checks,
    ok,
    failed,
    freshness,
    fingerprint,
    cached,
  };
}
