/**
 * The tdx provider against an emulated configfs-tsm tree. configfs fills a new report entry with
 * its attributes at mkdir; the emulator does the same through the provider's makeEntry. `outblob`
 * is a FIFO: each open for reading is one quote request, answered with the real phala v4 TDX
 * quote carrying whatever `inblob` holds then, after bumping `generation` as the kernel does for
 * the one write. A real TDX guest is not on these machines; this checks the file protocol.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, openSync, readdirSync, writeFileSync } from "node:fs";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pino } from "pino";
import { toHex } from "../../proxy/core/bytes.js";
import { parseQuote } from "../../proxy/evidence/dcap/quote.js";
import { AttestationError } from "../../proxy/attest/provider.js";
import { TdxProvider } from "../../proxy/attest/tdx.js";
import { openProvider } from "../../proxy/cli/serve.js";
import { loadConfig } from "../../proxy/server/config.js";
import { vector } from "../support/vectors.js";
import { sleep, tempDir, within } from "../support/wait.js";
import { nextReportData } from "../support/report-data.js";

const TEMPLATE = vector("tdx/phala-v4/quote.bin");
const REPORT_DATA_AT = 48 + 520;

/**
 * A report root whose entries come and go as configfs makes them: provider, inblob, generation,
 * outblob (a FIFO) at mkdir, all gone at rmdir.
 */
function tsmTree(provider = "tdx_guest"): { root: string; entries: string[]; makeEntry: (path: string) => Promise<void>; removeEntry: (path: string) => Promise<void> } {
  const root = tempDir("amcp-tsm-");
  const entries: string[] = [];
  return {
    root,
    entries,
    removeEntry: (path) => rm(path, { recursive: true }),
    makeEntry: async (path) => {
      await mkdir(path);
      await writeFile(join(path, "provider"), `${provider}\n`);
      await writeFile(join(path, "generation"), "0\n");
      await writeFile(join(path, "inblob"), new Uint8Array(0));
      execFileSync("mkfifo", [join(path, "outblob")]);
      entries.push(path);
    },
  };
}

interface Answer {
  /** How far generation moves for this request (1: our write alone; more: another writer too). */
  bump?: number;
  tamper?: (quote: Uint8Array) => Uint8Array;
}

/**
 * Answer `count` requests on `entry`, in order; `answers[i]` shapes the i-th. Before each one it
 * waits (bounded) for new report data in inblob: a serialised provider writes it only after
 * closing the previous outblob, so the FIFO then has no stale reader (an unserialised provider
 * makes this test fail).
 */
async function emulate(entry: string, count: number, answers: Answer[] = []): Promise<void> {
  let last: Buffer = Buffer.alloc(0);
  for (let i = 0; i < count; i++) {
    const rd = await nextReportData(join(entry, "inblob"), last, i);
    last = rd;
    const out = await open(join(entry, "outblob"), "w"); // returns once the provider opens it to read
    try {
      const gen = Number((await readFile(join(entry, "generation"), "utf8")).trim());
      await writeFile(join(entry, "generation"), `${gen + (answers[i]?.bump ?? 1)}\n`);
      let q: Uint8Array = Uint8Array.from(TEMPLATE);
      q.set(rd.subarray(0, 64), REPORT_DATA_AT);
      q = answers[i]?.tamper?.(q) ?? q;
      await out.write(q);
    } finally {
      await out.close();
    }
  }
}

/**
 * Unblock whoever still waits in open() on the FIFO, an emulator writer or a provider reader (a
 * failed test must not hang the run); bounded.
 */
function release(entry: string | undefined): void {
  if (!entry) return;
  for (let i = 0; i < 8; i++) {
    for (const flags of [constants.O_RDONLY | constants.O_NONBLOCK, constants.O_WRONLY | constants.O_NONBLOCK]) {
      try {
        closeSync(openSync(join(entry, "outblob"), flags));
      } catch {
        // nobody waiting on that side
      }
    }
  }
}

/**
 * Run a test's quote exchange bounded in time. A provider that is not serialised can leave
 * blocked FIFO opens filling libuv's thread pool, which starves the emulator's file reads: on
 * failure the FIFO is opened from both sides from this thread (no pool) until nobody waits.
 */
async function guarded(entry: string, body: () => Promise<void>): Promise<void> {
  try {
    await within(body(), 8000, "the quote exchange with the emulated tree");
  } catch (e) {
    for (let i = 0; i < 40; i++) {
      release(entry);
      await sleep(5);
    }
    throw e;
  }
  release(entry);
}

const rd = (n: number) => new Uint8Array(64).fill(n);
const refused = (code: string, pattern: RegExp) => (e: unknown) => e instanceof AttestationError && e.code === code && pattern.test(e.message);

describe("tdx provider (configfs-tsm)", { timeout: 20_000 }, () => {
  it("makes its own report entry, writes the report data to inblob, returns the outblob quote carrying it", async () => {
    const t = tsmTree();
    const p = await TdxProvider.open(t.root, t);
    await guarded(p.entry, async () => {
      assert.deepEqual([p.name, p.tee, p.dev], ["tdx", "tdx", false]);
      assert.equal(t.entries.length, 1);
      assert.match(p.entry, new RegExp(`^${t.root}/attestable-mcp-${process.pid}-[0-9a-f]{8}$`));
      const [quote] = await Promise.all([p.quote(rd(7)), emulate(p.entry, 1)]);
      const q = parseQuote(quote);
      assert.equal(q.teeType, "TDX");
      assert.equal(toHex(q.body.reportData), toHex(rd(7)));
      assert.equal(quote.length, q.length, "the quote without the vector's trailing bytes");
      assert.deepEqual(new Uint8Array(await readFile(join(p.entry, "inblob"))), rd(7));
      await p.close();
      assert.equal(existsSync(p.entry), false, "close removes the entry");
    });
  });

  it("serialises concurrent calls: six at once each get the quote over their own report data", async () => {
    const t = tsmTree();
    const p = await TdxProvider.open(t.root, t);
    await guarded(p.entry, async () => {
      const calls = Array.from({ length: 6 }, (_, i) => p.quote(rd(i + 1)));
      const [quotes] = await Promise.all([Promise.all(calls), emulate(p.entry, 6)]);
      quotes.forEach((q, i) => assert.equal(toHex(parseQuote(q).body.reportData), toHex(rd(i + 1))));
    });
  });

  it("report-data check: refuses a quote whose report data is not the one written, and goes on working after", async () => {
    const t = tsmTree();
    const p = await TdxProvider.open(t.root, t);
    await guarded(p.entry, async () => {
      const emu = emulate(p.entry, 2, [
        {
          tamper: (q) => {
            q[REPORT_DATA_AT] = q[REPORT_DATA_AT]! ^ 0xff;
            return q;
          },
        },
      ]);
      await assert.rejects(p.quote(rd(3)), refused("TDX_QUOTE", /carries report data fc03.*not the 0303/));
      assert.equal(toHex(parseQuote(await p.quote(rd(4))).body.reportData), toHex(rd(4)));
      await emu;
    });
  });

  it("generation check: refuses the quote when generation moved by more than our one write (another writer)", async () => {
    const t = tsmTree();
    const p = await TdxProvider.open(t.root, t);
    await guarded(p.entry, async () => {
      const emu = emulate(p.entry, 2, [{ bump: 2 }]);
      await assert.rejects(p.quote(rd(5)), refused("TDX_GENERATION", /went from 0 to 2 across our one write to inblob: another writer/));
      assert.equal(toHex(parseQuote(await p.quote(rd(6))).body.reportData), toHex(rd(6)));
      await emu;
    });
  });

  it("TDX check: refuses an outblob that holds an SGX quote or no quote", async () => {
    const t = tsmTree();
    const p = await TdxProvider.open(t.root, t);
    await guarded(p.entry, async () => {
      const sgx = vector("sgx/phala/quote.bin");
      const emu = emulate(p.entry, 2, [{ tamper: () => sgx }, { tamper: (q) => q.subarray(0, 100) }]);
      await assert.rejects(p.quote(rd(8)), refused("TDX_QUOTE", /holds an SGX quote, not a TDX one/));
      await assert.rejects(p.quote(rd(9)), refused("TDX_QUOTE", /outblob is not a quote: .*truncated/));
      await emu;
    });
  });

  it("tree check: fails at open, naming the directory, where there is no configfs-tsm report tree; never falls back", async () => {
    const missing = join(tempDir("amcp-tsm-"), "no-such-dir");
    await assert.rejects(TdxProvider.open(missing), refused("TDX_UNAVAILABLE", new RegExp(`${missing} is not usable \\(ENOENT\\): not a TDX guest.*never used instead`)));
  });

  it("provider check: fails at open when the entry's provider is not tdx_guest, and removes the entry it made", async () => {
    const t = tsmTree("sev_guest");
    await assert.rejects(TdxProvider.open(t.root, t), refused("TDX_PROVIDER", /provider says "sev_guest", need "tdx_guest"/));
    assert.equal(t.entries.length, 1);
    assert.deepEqual(readdirSync(t.root), []);
  });

  it("permission check: fails at open when the entry cannot be made, saying so", async () => {
    const t = tsmTree();
    const deny = async () => {
      throw Object.assign(new Error("denied"), { code: "EACCES" });
    };
    await assert.rejects(TdxProvider.open(t.root, { makeEntry: deny }), refused("TDX_UNAVAILABLE", /cannot create the report entry .*EACCES: permission denied/));
    // A plain directory is not a report tree: mkdir gives an entry without attributes.
    await assert.rejects(TdxProvider.open(t.root), refused("TDX_UNAVAILABLE", /provider \(ENOENT\).*not a configfs-tsm report directory/));
    assert.deepEqual(readdirSync(t.root), []);
  });

  it("serve opens it for attestation.provider: tdx at attestation.tdx.dir, and fails there rather than fall back to dev", async () => {
    const dir = tempDir("amcp-tsm-");
    const file = join(dir, "serve.yaml");
    writeFileSync(file, `listen: "127.0.0.1:0"\nattestation: { provider: tdx, tdx: { dir: "${join(dir, "report")}" } }\nupstream: { url: "http://127.0.0.1:9" }\n`);
    const config = await loadConfig({ file });
    await assert.rejects(openProvider(config, pino({ level: "silent" })), refused("TDX_UNAVAILABLE", new RegExp(`${join(dir, "report")} is not usable`)));
  });

  it("refuses report data that is not 64 bytes", async () => {
    const t = tsmTree();
    const p = await TdxProvider.open(t.root, t);
    assert.throws(() => p.quote(new Uint8Array(32)), { code: "REPORT_DATA_SIZE" });
    await p.close();
  });
});
