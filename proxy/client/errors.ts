/** Errors of the client side. Each has a stable `code`; rejections carry the whole verdict. */
import { EvidenceError } from "../core/errors.js";
import type { ConnectionVerdict } from "./verdict.js";

/** The peer's evidence did not satisfy the policy: nothing was sent to it. */
export class AttestationRejectedError extends EvidenceError {
  readonly verdict: ConnectionVerdict;
  constructor(verdict: ConnectionVerdict) {
    const f = verdict.failed ?? { check: "policy.verdict", reason: "the verdict is not ok" };
    super("ATTESTATION_REJECTED", `attestation rejected: ${f.check}: ${f.reason}`);
    this.verdict = verdict;
  }
}

/**
 * Usage and connection-level failures of the connector (not verdicts): a plaintext URL, a
 * connection that did not finish within its bound.
 */
export class ConnectorError extends EvidenceError {}
