/**
 * The gramine provider against an emulated /dev/attestation: `quote` is a FIFO, and on every
 * open the emulator reads user_report_data and answers with a quote carrying it, as Gramine
 * generates the quote on open. Real SGX is not on these machines; this checks the file protocol.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync, writeFileSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { toHex } from "../../proxy/core/bytes.js";
import { parseQuote } from "../../proxy/evidence/dcap/quote.js";
import { GramineProvider } from "../../proxy/attest/gramine.js";
import { AttestationError } from "../../proxy/attest/provider.js";
import { vector } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";
import { nextReportData } from "../support/report-data.js";

const TEMPLATE = vector("sgx/phala/quote.bin");
const REPORT_DATA_AT = 48 + 320;

function fakeDevice(type = "dcap"): string {
  const dir = tempDir("amcp-attestation-");
  writeFileSync(join(dir, "attestation_type"), `${type}\n`);
  writeFileSync(join(dir, "user_report_data"), new Uint8Array(64));
  execFileSync("mkfifo", [join(dir, "quote")]);
  return dir;
}

/**
 * Answer `count` quote requests; `tamper` may corrupt an answer. Before each one it waits for new
 * report data: a serialised provider writes it only after closing the previous quote, so the
 * FIFO then has no stale reader (an unserialised provider makes this test fail or time out).
 */
async function emulate(dir: string, count: number, tamper?: (q: Uint8Array, i: number) => void): Promise<void> {
  let last: Buffer = Buffer.alloc(64);
  for (let i = 0; i < count; i++) {
    const rd = await nextReportData(join(dir, "user_report_data"), last, i);
    last = rd;
    const fh = await open(join(dir, "quote"), "w"); // returns once the reader has opened it
    const q = Uint8Array.from(TEMPLATE);
    q.set(rd.subarray(0, 64), REPORT_DATA_AT);
    tamper?.(q, i);
    await fh.write(q);
    await fh.close();
  }
}

/** Unblock an emulator still waiting in open() (a failed test must not hang the run). */
function release(dir: string): void {
  try {
    closeSync(openSync(join(dir, "quote"), constants.O_RDONLY | constants.O_NONBLOCK));
  } catch {
    // nothing waiting
  }
}

const rd = (n: number) => new Uint8Array(64).fill(n);

describe("gramine provider", { timeout: 20_000 }, () => {
  it("writes the report data in one write, reads the generated quote, returns it", async () => {
    const dir = fakeDevice();
    try {
      const p = await GramineProvider.open(dir);
      assert.equal(p.dev, false);
      const [quote] = await Promise.all([p.quote(rd(7)), emulate(dir, 1)]);
      assert.equal(toHex(parseQuote(quote).body.reportData), toHex(rd(7)));
      assert.deepEqual(new Uint8Array(await readFile(join(dir, "user_report_data"))), rd(7));
    } finally {
      release(dir);
    }
  });

  it("serialises concurrent calls: eight at once each get the quote for their own report data", async () => {
    const dir = fakeDevice();
    try {
      const p = await GramineProvider.open(dir);
      const calls = Array.from({ length: 8 }, (_, i) => p.quote(rd(i + 1)));
      const [quotes] = await Promise.all([Promise.all(calls), emulate(dir, 8)]);
      quotes.forEach((q, i) => assert.equal(toHex(parseQuote(q).body.reportData), toHex(rd(i + 1))));
    } finally {
      release(dir);
    }
  });

  it("refuses a quote that does not carry the report data written, and goes on working after", async () => {
    const dir = fakeDevice();
    try {
      const p = await GramineProvider.open(dir);
      const emu = emulate(dir, 2, (q, i) => {
        if (i === 0) q[REPORT_DATA_AT] = q[REPORT_DATA_AT]! ^ 0xff;
      });
      await assert.rejects(p.quote(rd(3)), (e: unknown) => e instanceof AttestationError && e.code === "GRAMINE_QUOTE" && /not the 0303/.test(e.message));
      assert.equal(toHex(parseQuote(await p.quote(rd(4))).body.reportData), toHex(rd(4)));
      await emu;
    } finally {
      release(dir);
    }
  });

  it("fails at start-up, naming the file, where there is no /dev/attestation (no SGX, gramine-direct)", async () => {
    await assert.rejects(
      GramineProvider.open(join(tmpdir(), "amcp-no-such-dir")),
      (e: unknown) => e instanceof AttestationError && e.code === "GRAMINE_UNAVAILABLE" && /attestation_type/.test(e.message) && /never used instead/.test(e.message),
    );
  });

  it("fails at start-up when the attestation type is not dcap", async () => {
    const dir = fakeDevice("none");
    await assert.rejects(GramineProvider.open(dir), { code: "GRAMINE_ATTESTATION_TYPE" });
  });

  it("refuses report data that is not 64 bytes", async () => {
    const dir = fakeDevice();
    const p = await GramineProvider.open(dir);
    assert.throws(() => p.quote(new Uint8Array(32)), { code: "REPORT_DATA_SIZE" });
  });
});
