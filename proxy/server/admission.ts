/**
 * What the attested listener refuses before routing, for every upstream kind: connections past a
 * client's share or the global cap (closed at once, before any TLS work), and request heads no
 * upstream should see: a version-less request line, a target that is not origin-form (an
 * absolute URL names another server; `*` names none), two Host headers (which one the upstream
 * believes is anyone's guess), and more header lines than limits.maxHeaders (which would push the
 * proxy's own headers past an upstream's header cap).
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Server, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { jsonRpcErrorBody } from "../core/jsonrpc.js";
import { type ConnectionShares, clientOfAddress } from "./shares.js";

export interface HeadProblem {
  status: 400 | 431;
  message: string;
}

/** Why a request head is refused, or null. `maxHeaders` counts header lines as sent. */
export function requestHeadProblem(req: IncomingMessage, maxHeaders: number): HeadProblem | null {
  if (req.httpVersionMajor !== 1) return { status: 400, message: "Bad Request: the request line needs an HTTP/1.x version" };
  const url = req.url ?? "";
  if (!url.startsWith("/")) return { status: 400, message: "Bad Request: only origin-form request targets (/path?query) are served" };
  // The server's parser keeps at most maxHeaders + 1 lines (listener.ts): one more means too many.
  const lines = req.rawHeaders.length / 2;
  if (lines > maxHeaders) return { status: 431, message: `Request Header Fields Too Large: more than ${maxHeaders} header lines (limits.maxHeaders)` };
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.length === 4 && req.rawHeaders[i]!.toLowerCase() === "host" && ++hosts > 1) return { status: 400, message: "Bad Request: more than one Host header" };
  }
  return null;
}

/** Answers the problem and closes the connection: after a refused head nothing on it is trusted. */
export function refuseRequest(res: ServerResponse, p: HeadProblem): void {
  const body = jsonRpcErrorBody(p.message);
  res.writeHead(p.status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), Connection: "close" });
  res.end(body);
}

export function refuseUpgrade(socket: Duplex, p: HeadProblem): void {
  answerUpgrade(socket, p.status, p.message);
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * Answers an Upgrade request on its own socket, which Node's HTTP server has let go of, and ends
 * it: a JSON-RPC error body saying why (`message`), as every refusal of the proxy has, or none.
 */
export function answerUpgrade(socket: Duplex, status: number, message: string | null, headers: Record<string, string> = {}): void {
  const body = message === null ? "" : jsonRpcErrorBody(message);
  const lines = Object.entries({ ...headers, ...(message === null ? {} : { "Content-Type": "application/json" }) })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n${lines}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * Counts every TCP connection of `server` against `shares` and closes those past a share or the
 * cap as they arrive. The check sits in front of the server's own 'connection' handling (its
 * `emit`), so a refused connection never reaches TLS: no handshake is spent on it and it is not
 * counted as a failed one.
 */
export function admitConnections(server: Server, shares: ConnectionShares, onRefused: (scope: "client" | "global") => void): void {
  const emit = server.emit as (this: Server, event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== "connection") return emit.call(this, event, ...args);
    const socket = args[0] as Socket;
    const client = clientOfAddress(socket.remoteAddress);
    const verdict = shares.admit(client);
    if (verdict !== "ok") {
      onRefused(verdict);
      socket.destroy();
      return true;
    }
    socket.once("close", () => shares.release(client));
    return emit.call(this, event, ...args);
  } as Server["emit"];
}
