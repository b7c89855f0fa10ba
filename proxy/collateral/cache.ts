/**
 * The on-disk copy of one key's collateral: `<dir>/<tee>-<fmspc>-<ca>.json` (directory 0700, file
 * 0600, written to a temporary name and renamed). A copy read back is verified again before use;
 * one that is unreadable, malformed or does not verify is ignored with a warning, never an error.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AttestableMcpError } from "../core/errors.js";
import type { Result } from "../core/result.js";
import { prepareCollateral } from "../evidence/dcap/collateral.js";
import { partsFromDcapQvl, type DcapQvlCollateral } from "../evidence/dcap/collateral-files.js";
import type { TrustAnchor } from "../evidence/dcap/roots.js";
import type { CollateralKey } from "./key.js";
import { describe } from "./pccs-http.js";
import { vouch } from "./vouch.js";

const CACHE_FORMAT = "attestable-mcp/pccs-collateral/1";

export interface Entry {
  qvl: DcapQvlCollateral;
  fetchedAt: Date;
  nextUpdate: Date;
  /** No request before this time. */
  nextAttempt: Date;
  /** The last failed refresh, "CODE: detail". */
  error: string | null;
}

/** The fields of a cache document for `k`, before any of it is trusted. */
function cachedFields(doc: unknown, k: CollateralKey): Result<{ fetchedAt: Date; qvl: Record<string, unknown> }> {
  const o = doc as Record<string, unknown> | null;
  if (o === null || typeof o !== "object" || o.format !== CACHE_FORMAT) return { ok: false, reason: `not a ${CACHE_FORMAT} file` };
  if (o.tee !== k.tee || o.fmspc !== k.fmspc || o.ca !== k.ca) return { ok: false, reason: "it is for another key" };
  const fetchedAt = new Date(typeof o.fetchedAt === "string" ? o.fetchedAt : NaN);
  if (Number.isNaN(fetchedAt.getTime())) return { ok: false, reason: "fetchedAt is not a time" };
  const c = o.collateral;
  if (c === null || typeof c !== "object" || Array.isArray(c)) return { ok: false, reason: "no collateral object" };
  return { ok: true, value: { fetchedAt, qvl: c as Record<string, unknown> } };
}

/** The cached copy in `file`, verified again; null when there is none or it does not verify. */
export async function readCached(file: string, k: CollateralKey, anchors: readonly TrustAnchor[], now: Date, warn: (m: string) => void): Promise<Entry | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") warn(`PCCS cache ${file} is unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ignoring it`);
    return null;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    warn(`PCCS cache ${file} is not used: ${(e as Error).message}`);
    return null;
  }
  const fields = cachedFields(doc, k);
  if (!fields.ok) {
    warn(`PCCS cache ${file} is not used: ${fields.reason}`);
    return null;
  }
  const { fetchedAt, qvl } = fields.value;
  try {
    const vouched = vouch(prepareCollateral(partsFromDcapQvl(qvl)), k, anchors, now);
    return { qvl: qvl as unknown as DcapQvlCollateral, fetchedAt, nextUpdate: vouched.nextUpdate, nextAttempt: vouched.nextUpdate, error: null };
  } catch (e) {
    warn(`PCCS cache ${file} is not used: ${e instanceof AttestableMcpError ? describe(e) : (e as Error).message}`);
    return null;
  }
}

/** Write `entry` for `k` into `dir` (created 0700); a failure is a warning: the copy stays in memory. */
export async function writeCached(dir: string, id: string, k: CollateralKey, source: string, entry: Entry, warn: (m: string) => void): Promise<void> {
  const file = join(dir, `${id}.json`);
  const tmp = join(dir, `.${id}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const doc = { format: CACHE_FORMAT, ...k, source, fetchedAt: entry.fetchedAt.toISOString(), nextUpdate: entry.nextUpdate.toISOString(), collateral: entry.qvl };
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(tmp, `${JSON.stringify(doc)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    warn(`PCCS cache ${file} could not be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); collateral is kept in memory only`);
  }
}
