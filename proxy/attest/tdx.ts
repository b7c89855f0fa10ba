/**
 * Quotes in a TDX guest through Linux configfs-tsm (kernel 6.7 and later): a report entry is a
 * directory made under the report root; the kernel fills it with `provider`, `inblob`, `outblob`
 * and `generation`. Writing up to 64 bytes to `inblob` and reading `outblob` yields a quote over
 * them; `generation` counts writes to the entry, which is how a second writer (another process
 * using the same entry) is detected: it must move by exactly our one write between the reads
 * before and after. Each provider makes its own entry and uses it one quote at a time.
 *
 * Without the tree (not a TDX guest, configfs not mounted, an older kernel) or with another
 * provider (`sev_guest`), opening fails; there is no fallback to the dev provider.
 */
import { randomBytes } from "node:crypto";
import { rmdirSync } from "node:fs";
import { access, mkdir, open, readFile, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { equalBytes, toHex } from "../core/bytes.js";
import { MAX_QUOTE_BYTES, parseQuote } from "../evidence/dcap/quote.js";
import { AttestationError, checkReportData, readQuoteFile, type AttestationProvider } from "./provider.js";

export const TSM_REPORT_DIR = "/sys/kernel/config/tsm/report";
const TDX_PROVIDER_NAME = "tdx_guest";

export interface TdxProviderOptions {
  /**
   * Make and remove a report entry. configfs creates its attributes inside the new directory at
   * mkdir and drops them at rmdir; a test tree emulates that here. Default: mkdir, rmdir.
   */
  makeEntry?: (path: string) => Promise<unknown>;
  removeEntry?: (path: string) => Promise<unknown>;
}

/** Entries still present at exit are removed then: configfs keeps them until someone does. */
const openEntries = new Map<string, TdxProviderOptions["removeEntry"]>();
let exitHook = false;
function track(entry: string, remove: TdxProviderOptions["removeEntry"]): void {
  openEntries.set(entry, remove);
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const [e, custom] of openEntries) {
      if (custom) continue; // an emulated tree cleans up after itself
      try {
        rmdirSync(e);
      } catch {
        // already gone: nothing to remove
      }
    }
  });
}

function why(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return `${code}: permission denied; run serve as a user that may create report entries there (root, or a group given write access to it)`;
  return code ?? (e as Error).message;
}

export class TdxProvider implements AttestationProvider {
  readonly name = "tdx";
  readonly tee = "tdx";
  readonly dev = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly entry: string,
    private readonly removeEntry: (path: string) => Promise<unknown>,
  ) {}

  /** Make this process's report entry and check it is TDX's, before the first quote is needed. */
  static async open(dir = TSM_REPORT_DIR, opts: TdxProviderOptions = {}): Promise<TdxProvider> {
    const unusable = (reason: string) =>
      new AttestationError(
        "TDX_UNAVAILABLE",
        `tdx provider: the configfs-tsm report directory ${dir} is not usable (${reason}): not a TDX guest, configfs not mounted at /sys/kernel/config, or a kernel without configfs-tsm (6.7 and later have it); the dev provider is never used instead`,
      );
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(dir)).isDirectory();
    } catch (e) {
      throw unusable(why(e));
    }
    if (!isDirectory) throw unusable("not a directory");
    const entry = join(dir, `attestable-mcp-${process.pid}-${randomBytes(4).toString("hex")}`);
    const removeEntry = opts.removeEntry ?? rmdir;
    try {
      await (opts.makeEntry ?? mkdir)(entry);
    } catch (e) {
      throw new AttestationError("TDX_UNAVAILABLE", `tdx provider: cannot create the report entry ${entry} (${why(e)})`);
    }
    try {
      let provider: string;
      try {
        provider = (await readFile(join(entry, "provider"), "utf8")).trim();
      } catch (e) {
        throw new AttestationError("TDX_UNAVAILABLE", `tdx provider: cannot read ${join(entry, "provider")} (${why(e)}): ${dir} is not a configfs-tsm report directory`);
      }
      if (provider !== TDX_PROVIDER_NAME) {
        throw new AttestationError("TDX_PROVIDER", `tdx provider: ${join(entry, "provider")} says "${provider}", need "${TDX_PROVIDER_NAME}": this guest's quotes are not TDX quotes`);
      }
      for (const [f, mode] of [
        ["inblob", 2],
        ["outblob", 4],
        ["generation", 4],
      ] as const) {
        try {
          await access(join(entry, f), mode);
        } catch (e) {
          throw new AttestationError("TDX_UNAVAILABLE", `tdx provider: ${join(entry, f)} is not usable (${why(e)})`);
        }
      }
      const p = new TdxProvider(entry, removeEntry);
      await p.generation();
      track(entry, opts.removeEntry);
      return p;
    } catch (e) {
      await removeEntry(entry).catch(() => {});
      throw e;
    }
  }

  quote(reportData: Uint8Array): Promise<Uint8Array> {
    checkReportData(reportData);
    const run = this.queue.then(() => this.quoteNow(reportData));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Remove the report entry; later quotes fail. */
  async close(): Promise<void> {
    openEntries.delete(this.entry);
    await this.queue;
    await this.removeEntry(this.entry).catch(() => {});
  }

  private async generation(): Promise<number> {
    const file = join(this.entry, "generation");
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      throw new AttestationError("TDX_UNAVAILABLE", `tdx provider: cannot read ${file} (${why(e)})`);
    }
    if (!/^\d{1,15}\n?$/.test(text)) throw new AttestationError("TDX_GENERATION", `tdx provider: ${file} reads ${JSON.stringify(text.slice(0, 32))}, not a count`);
    return Number(text.trim());
  }

  private async quoteNow(reportData: Uint8Array): Promise<Uint8Array> {
    const before = await this.generation();
    const inblob = join(this.entry, "inblob");
    const fh = await open(inblob, "w").catch((e: unknown) => {
      throw new AttestationError("TDX_WRITE", `tdx provider: cannot open ${inblob} (${why(e)})`);
    });
    try {
      const { bytesWritten } = await fh.write(reportData, 0, reportData.length, 0);
      if (bytesWritten !== reportData.length) throw new AttestationError("TDX_WRITE", `tdx provider: wrote ${bytesWritten} of ${reportData.length} bytes of ${inblob}`);
    } finally {
      await fh.close();
    }
    const outblob = join(this.entry, "outblob");
    const quote = await readBounded(outblob);
    const after = await this.generation();
    if (after !== before + 1) {
      throw new AttestationError(
        "TDX_GENERATION",
        `tdx provider: ${join(this.entry, "generation")} went from ${before} to ${after} across our one write to inblob: another writer used ${this.entry}, so the quote may not carry our report data; refused`,
      );
    }
    let q;
    try {
      q = parseQuote(quote);
    } catch (e) {
      throw new AttestationError("TDX_QUOTE", `tdx provider: ${outblob} is not a quote: ${(e as Error).message}`);
    }
    if (q.teeType !== "TDX") throw new AttestationError("TDX_QUOTE", `tdx provider: ${outblob} holds an ${q.teeType} quote, not a TDX one`);
    if (!equalBytes(q.body.reportData, reportData)) {
      throw new AttestationError("TDX_QUOTE", `tdx provider: the quote carries report data ${toHex(q.body.reportData)}, not the ${toHex(reportData)} written`);
    }
    return quote.subarray(0, q.length);
  }
}

async function readBounded(path: string): Promise<Uint8Array> {
  const fh = await open(path, "r").catch((e: unknown) => {
    throw new AttestationError("TDX_QUOTE", `tdx provider: cannot open ${path} (${why(e)})`);
  });
  try {
    return await readQuoteFile(fh, () => new AttestationError("TDX_QUOTE", `tdx provider: ${path} holds more than ${MAX_QUOTE_BYTES} bytes`));
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    throw new AttestationError("TDX_QUOTE", `tdx provider: reading ${path} failed (${why(e)})`);
  } finally {
    await fh.close();
  }
}
