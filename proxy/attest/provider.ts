/**
 * Attestation providers produce quotes over 64 bytes of report data. `gramine` reads them from
 * Gramine's /dev/attestation on real SGX; `tdx` from Linux configfs-tsm in a TDX guest; `dev`
 * signs real-format DCAP quotes (SGX or TDX) with a local dev PKI so that the whole path runs,
 * unchanged, without either. Nothing ever falls back from one to the other.
 */
import type { FileHandle } from "node:fs/promises";
import { AttestationError } from "../core/errors.js";
import { MAX_QUOTE_BYTES } from "../evidence/dcap/quote.js";

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

/**
 * A quote file read to its end. A device is not trusted to stop: past MAX_QUOTE_BYTES the read
 * ends with the error `tooBig` makes, not with a buffer grown to whatever the device sends.
 */
export async function readQuoteFile(fh: FileHandle, tooBig: () => AttestationError): Promise<Uint8Array> {
  const buf = Buffer.alloc(MAX_QUOTE_BYTES + 1);
  let n = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
    if (bytesRead === 0) break;
    n += bytesRead;
    if (n > MAX_QUOTE_BYTES) throw tooBig();
  }
  return new Uint8Array(buf.subarray(0, n));
}
