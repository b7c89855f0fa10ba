/**
 * The access log: one line per request when its response closes. No bodies, no query strings
 * (nonces), no headers: method, path, status and time, and the caller's key name when it has one.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";

/** The request target without its query. */
export function pathOf(url: string | undefined): string {
  if (url === undefined) return "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

/**
 * The line for a request whose response has closed, `ms` after it arrived. Called by the
 * listener's one close handler per response (metrics.ts), so logging adds no listener of its own;
 * nothing is built when the level filters the line out.
 */
export function accessLog(log: Logger, subjectOf: (req: IncomingMessage) => string | null = () => null): (req: IncomingMessage, res: ServerResponse, ms: number) => void {
  return (req, res, ms) => {
    if (!log.isLevelEnabled("info")) return;
    const subject = subjectOf(req);
    log.info({ method: req.method ?? "?", path: pathOf(req.url), status: res.statusCode, ms: Math.round(ms), ...(subject === null ? {} : { subject }) }, "request");
  };
}
