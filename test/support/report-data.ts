/**
 * The emulated attestation devices of the provider tests (Gramine's /dev/attestation, configfs-tsm)
 * wait, as the real ones are written to, for the provider's next 64 bytes of report data.
 */
import { readFile } from "node:fs/promises";

/** The next 64 bytes written to `file` that differ from `last` (request `i`, for the error), polled for at most 5 s. */
export async function nextReportData(file: string, last: Buffer, i: number): Promise<Buffer> {
  const deadline = Date.now() + 5000;
  let rd = await readFile(file);
  while (rd.length !== 64 || rd.equals(last)) {
    if (Date.now() > deadline) throw new Error(`emulator: no new report data for request ${i}`);
    await new Promise((r) => setTimeout(r, 2));
    rd = await readFile(file);
  }
  return rd;
}
