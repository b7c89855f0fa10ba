/**
 * Attestation providers produce quotes over 64 bytes of report data. `gramine` reads them from
 * Gramine's /dev/attestation on real SGX; `tdx` from Linux configfs-tsm in a TDX guest; `dev`
 * signs real-format DCAP quotes (SGX or TDX) with a local dev PKI so that the whole path runs,
 * unchanged, without either. Nothing ever falls back from one to the other.
 */
import { AttestationError } from "../core/errors.js";

export const REPORT_DATA_BYTES = 64;

export interface AttestationProvider {
  readonly name: "dev" | "gramine" | "tdx";
  /** What the quotes attest: an SGX enclave or a TDX trust domain (absent: SGX). */
  readonly tee?: "sgx" | "tdx";
  /** Evidence from this provider chains to the dev root, never to Intel's. */
  readonly dev: boolean;
  quote(reportData: Uint8Array): Promise<Uint8Array>;
}

export { AttestationError };

export function checkReportData(reportData: Uint8Array): void {
  if (!(reportData instanceof Uint8Array) || reportData.length !== REPORT_DATA_BYTES) {
    throw new AttestationError("REPORT_DATA_SIZE", `report data must be exactly ${REPORT_DATA_BYTES} bytes, got ${reportData?.length}`);
  }
}
