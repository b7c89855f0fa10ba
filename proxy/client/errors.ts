/** Errors of the client side. Each has a stable `code`; rejections carry the whole verdict. */
import { AttestableMcpError, ConnectorError } from "../core/errors.js";
import type { ConnectionVerdict } from "./verdict.js";

/** The peer's evidence did not satisfy the policy: nothing was sent to it. */
export class AttestationRejectedError extends AttestableMcpError<"ATTESTATION_REJECTED"> {
  readonly verdict: ConnectionVerdict;
  constructor(verdict: ConnectionVerdict) {
    const f = verdict.failed ?? { check: "policy.verdict", reason: "the verdict is not ok" };
    super("ATTESTATION_REJECTED", `attestation rejected: ${f.check}: ${f.reason}`);
    this.verdict = verdict;
  }
}

export { ConnectorError };
