/**
 * Quotes from Gramine's attestation pseudo-files (real SGX, `gramine-sgx`):
 * write 64 bytes to `user_report_data` in one write, then open and read `quote`, which Gramine
 * generates on open. The files are per process and not thread-safe, so calls are serialised.
 * `gramine-direct` and non-SGX hosts have no such files: opening the provider fails, and there is
 * no fallback to the dev provider.
 */
import { constants } from "node:fs";
import { access, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { equalBytes, toHex } from "../core/bytes.js";
import { MAX_QUOTE_BYTES, parseQuote } from "../evidence/dcap/quote.js";
import { AttestationError, checkReportData, readQuoteFile, type AttestationProvider } from "./provider.js";

export const GRAMINE_ATTESTATION_DIR = "/dev/attestation";

export class GramineProvider implements AttestationProvider {
  readonly name = "gramine";
  readonly tee = "sgx";
  readonly dev = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly base: string) {}

  /** Check the attestation files before the first quote is needed (at start-up). */
  static async open(base = GRAMINE_ATTESTATION_DIR): Promise<GramineProvider> {
    const typeFile = join(base, "attestation_type");
    let type: string;
    try {
      type = (await readFile(typeFile, "utf8")).trim();
    } catch (e) {
      throw new AttestationError(
        "GRAMINE_UNAVAILABLE",
        `gramine provider: cannot read ${typeFile} (${(e as NodeJS.ErrnoException).code}): not running under gramine-sgx with remote attestation (gramine-direct and plain hosts have no quotes); the dev provider is never used instead`,
      );
    }
    if (type !== "dcap") {
      throw new AttestationError("GRAMINE_ATTESTATION_TYPE", `gramine provider: ${typeFile} says "${type}", need "dcap" (set sgx.remote_attestation = "dcap" in the manifest)`);
    }
    for (const f of ["user_report_data", "quote"]) {
      try {
        await access(join(base, f), f === "quote" ? constants.R_OK : constants.W_OK);
      } catch (e) {
        throw new AttestationError("GRAMINE_UNAVAILABLE", `gramine provider: ${join(base, f)} is not usable (${(e as NodeJS.ErrnoException).code})`);
      }
    }
    return new GramineProvider(base);
  }

  quote(reportData: Uint8Array): Promise<Uint8Array> {
    checkReportData(reportData);
    const run = this.queue.then(() => this.quoteNow(reportData));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async quoteNow(reportData: Uint8Array): Promise<Uint8Array> {
    const rd = await open(join(this.base, "user_report_data"), "w");
    try {
      const { bytesWritten } = await rd.write(reportData, 0, reportData.length, 0);
      if (bytesWritten !== reportData.length) {
        throw new AttestationError("GRAMINE_WRITE", `gramine provider: wrote ${bytesWritten} of ${reportData.length} bytes of user_report_data`);
      }
    } finally {
      await rd.close();
    }
    const fh = await open(join(this.base, "quote"), "r");
    let quote: Uint8Array;
    try {
      quote = await readQuoteFile(fh, () => new AttestationError("GRAMINE_QUOTE", `gramine provider: quote is larger than ${MAX_QUOTE_BYTES} bytes`));
    } finally {
      await fh.close();
    }
    // The quote must be well formed and carry exactly the report data we wrote.
    let q;
    try {
      q = parseQuote(quote);
    } catch (e) {
      throw new AttestationError("GRAMINE_QUOTE", `gramine provider: ${join(this.base, "quote")} is not a quote: ${(e as Error).message}`);
    }
    if (!equalBytes(q.body.reportData, reportData)) {
      throw new AttestationError("GRAMINE_QUOTE", `gramine provider: the quote carries report data ${toHex(q.body.reportData)}, not the ${toHex(reportData)} written`);
    }
    return quote.subarray(0, q.length);
  }
}
