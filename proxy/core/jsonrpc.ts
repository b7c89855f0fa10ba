/** JSON-RPC 2.0 error answers for HTTP failures the proxy itself produces (4xx/5xx). */
import type { ServerResponse } from "node:http";

/** -32000: implementation-defined server error, what MCP transports use for HTTP-level failures. */
export const SERVER_ERROR = -32000;

export function jsonRpcErrorBody(message: string, code = SERVER_ERROR): string {
  return JSON.stringify({ jsonrpc: "2.0", id: null, error: { code, message } });
}

/**
 * Answer with a JSON-RPC error. When headers already went out the response is destroyed, never
 * ended: a cut-short response must not look like a complete one.
 */
export function sendJsonRpcError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}, code = SERVER_ERROR): void {
  if (res.destroyed || res.writableEnded) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = jsonRpcErrorBody(message, code);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}
