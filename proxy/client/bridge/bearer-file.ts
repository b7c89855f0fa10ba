/**
 * `bridge --bearer-file`: the token is read from a file (never argv, which other users can list)
 * and re-read when the file changes, so that whatever renews it (an OAuth client, an operator's
 * rotation) reaches a bridge that runs for days. The file's mtime is checked at most once per
 * `recheckMs`, on a request's way out.
 */
import { readFileSync, statSync } from "node:fs";
import { BridgeError } from "../../core/errors.js";

/** The current token, for the `Authorization: Bearer` of the next request. */
export type BearerSource = () => string;

const TOKEN = /^[\x21-\x7e]+$/;

/** The file's token, trimmed; a BridgeError naming the file (never the content) when it is unreadable or not one token. */
function readToken(file: string): { token: string; mtimeMs: number } {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = statSync(file).mtimeMs;
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new BridgeError("BEARER_FILE_INVALID", `--bearer-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const token = text.trim();
  if (!TOKEN.test(token)) throw new BridgeError("BEARER_FILE_INVALID", `--bearer-file ${file}: expected one token (printable, no spaces)`);
  return { token, mtimeMs };
}

/**
 * Reads `file` now (a bad file stops the bridge before it starts) and returns the source of the
 * token. A later change that is unreadable or not one token keeps the previous token, with one
 * warning per change: the remote, not the bridge, decides whether that token is still good.
 */
export function bearerFile(file: string, warn: (line: string) => void, recheckMs = 1000): BearerSource {
  let current = readToken(file);
  let checked = Date.now();
  /** What was last warned of, so that one change is warned of once. */
  let warned: string | null = null;
  const warnOnce = (what: string, line: string): void => {
    if (warned !== what) warn(`${line}; the previous token is still sent`);
    warned = what;
  };
  return () => {
    const now = Date.now();
    if (now - checked < recheckMs) return current.token;
    checked = now;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch (e) {
      warnOnce("unreadable", `--bearer-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      return current.token;
    }
    if (mtimeMs === current.mtimeMs) return current.token;
    try {
      current = readToken(file);
      warned = null;
    } catch (e) {
      warnOnce(`refused ${mtimeMs}`, (e as Error).message);
    }
    return current.token;
  };
}
