/**
 * The access log: one line per request when its response closes. No bodies, no query strings
 * (nonces), no headers: method, path, status and time, and the caller's key name when it has one.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";

export function accessLog(log: Logger, subjectOf: (req: IncomingMessage) => string | null = () => null): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const t0 = performance.now();
    res.once("close", () => {
      if (log.isLevelEnabled("info")) {
        const subject = subjectOf(req);
        log.info(
          { method: req.method ?? "?", path: (req.url ?? "/").split("?", 1)[0], status: res.statusCode, ms: Math.round(performance.now() - t0), ...(subject === null ? {} : { subject }) },
          "request",
        );
      }
    });
  };
}
