/**
 * How an exchange or a tunnel ends, as logs and metrics name it, and how a failure is answered:
 * an error from the upstream side becomes 502 (unreachable, reset, or a request that could not be
 * put on the wire), silence becomes 504, always with a JSON-RPC error body, on a response or, for
 * an upgrade, as raw HTTP on the socket.
 */
import http from "node:http";
import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { jsonRpcErrorBody, sendJsonRpcError } from "../../../core/jsonrpc.js";

export type Outcome = "ok" | "connect" | "timeout" | "reset" | "invalid" | "idle" | "body-limit" | "client-closed" | "closed";

/** The outcomes logged as warnings: the upstream failed, not the client. */
export function isUpstreamFailure(outcome: Outcome): boolean {
  return outcome === "connect" || outcome === "timeout" || outcome === "reset";
}

/** Errors raised before a connection to the upstream exists. */
const CONNECT_ERRORS: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOENT",
  "EACCES",
  "ENOTSOCK",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

export const errCode = (err: unknown): string => (err as NodeJS.ErrnoException | undefined)?.code ?? "EUNKNOWN";

/** undici's "other side closed" is what node:http calls ECONNRESET ("socket hang up"); messages and the retry keep that name. */
export const upstreamCode = (err: unknown): string => {
  const code = errCode(err);
  return code === "UND_ERR_SOCKET" ? "ECONNRESET" : code;
};

/** undici refused the request itself (a header or method it will not send): nothing reached the upstream. */
export function isInvalidRequest(code: string): boolean {
  return code === "UND_ERR_INVALID_ARG" || code === "UND_ERR_NOT_SUPPORTED";
}

/** An upstream error before any response: the upstream could not be reached, or it hung up. */
export function upstreamFailure(code: string): "connect" | "reset" {
  return CONNECT_ERRORS.has(code) ? "connect" : "reset";
}

export function failureMessage(kind: "connect" | "reset", describe: string, code: string): string {
  return kind === "connect" ? `upstream ${describe} unreachable (${code})` : `upstream ${describe} closed the connection without a response (${code})`;
}

export const INVALID_REQUEST_MESSAGE = "request could not be forwarded (invalid header)";

export function headersTimeoutMessage(describe: string, ms: number): string {
  return `upstream ${describe} sent no response headers within ${ms} ms`;
}

/** A JSON-RPC error response, or a destroyed response when headers already went out. */
export function sendError(res: ServerResponse, status: number, message: string, close = false): void {
  sendJsonRpcError(res, status, message, close ? { Connection: "close" } : {});
}

/** An HTTP/1.1 error response on a raw (upgrade) socket, then the socket is ended. */
export function sendSocketError(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = jsonRpcErrorBody(message);
  const reason = http.STATUS_CODES[status] ?? "Error";
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), 1000).unref();
}
