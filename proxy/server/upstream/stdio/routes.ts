/**
 * Which endpoint answers which path: `/mcp` (Streamable HTTP), `/sse` and `/message` (legacy
 * HTTP+SSE); any other path is answered 404 here, and so is every Upgrade request (a stdio
 * upstream has no WebSocket). A request the guard refuses (Origin, Host: origin.ts) gets 403
 * before any of them sees it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";
import { answerUpgrade } from "../../admission.js";
import type { RequestGuard } from "./origin.js";

export interface Endpoints {
  mcp(req: IncomingMessage, res: ServerResponse): Promise<void>;
  sse(req: IncomingMessage, res: ServerResponse): Promise<void>;
  message(req: IncomingMessage, res: ServerResponse, query: string): Promise<void>;
}

export function routes(endpoints: Endpoints, log: Logger, guard?: RequestGuard): (req: IncomingMessage, res: ServerResponse) => void {
  const fail = (res: ServerResponse, err: unknown): void => {
    log.error({ err: err instanceof Error ? err.message : String(err) }, "stdio upstream: request failed");
    if (!res.headersSent) sendJsonRpcError(res, 500, "Internal error", {}, -32603);
    else if (!res.writableEnded) res.destroy();
  };
  return (req, res) => {
    const refused = guard?.check({ host: req.headers.host, origin: req.headers.origin });
    if (refused) {
      log.debug({ refused }, "stdio upstream: request refused");
      req.resume();
      return sendJsonRpcError(res, 403, refused);
    }
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? "" : url.slice(q + 1);
    let work: Promise<void>;
    if (path === "/mcp") work = endpoints.mcp(req, res);
    else if (path === "/sse") work = endpoints.sse(req, res);
    else if (path === "/message") work = endpoints.message(req, res, query);
    else return sendJsonRpcError(res, 404, `no MCP endpoint at ${path}: use /mcp (Streamable HTTP) or /sse (legacy)`);
    work.catch((err: unknown) => fail(res, err));
  };
}

/** Refuses an Upgrade request on its socket. */
export function refuseUpgrade(_req: IncomingMessage, socket: Duplex): void {
  answerUpgrade(socket, 404, null);
}
