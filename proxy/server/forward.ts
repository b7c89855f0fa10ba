/**
 * Streaming HTTP reverse proxy to an HTTP upstream (TCP or UNIX socket), on Node's `http` module.
 *
 * Both directions are streamed chunk by chunk with backpressure, nothing is buffered or re-encoded:
 * SSE events reach the client as the upstream writes them (headers flushed at once, Nagle off).
 * Hop-by-hop headers are stripped both ways; `X-Forwarded-*` are set by us, never taken from the
 * client; client-sent `X-Attested-Client-*` are removed before the listener's own are added. When
 * the client leaves, the upstream request is destroyed at once (so the upstream sees its stream end
 * and a reconnecting MCP client gets no 409); when the upstream dies mid-response, the client's
 * response is destroyed too (never a truncated body that looks complete).
 */
import http from "node:http";
import { jsonRpcErrorBody, sendJsonRpcError } from "./jsonrpc-error.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { noHooks, type ProxyHooks } from "./hooks.js";

export type UpstreamTarget = { kind: "http"; host: string; port: number } | { kind: "unix"; path: string };

export interface ForwardOptions {
  target: UpstreamTarget;
  /** When set, the Host header sent upstream; otherwise the client's Host is passed. */
  hostHeader?: string | null;
  /** Request body bytes, default 4 MiB: beyond → 413 (JSON-RPC error body), nothing forwarded past the limit. */
  bodyLimit?: number;
  /** The upstream must answer with headers within this (default 30 s) after the request was sent → 504. */
  headersTimeoutMs?: number;
  /** No byte either way on an exchange or stream for this long → close it (default 5 min). Never a cap on a stream's life. */
  idleTimeoutMs?: number;
  log: Logger;
  hooks?: ProxyHooks;
  /** Headers the listener adds after stripping client-sent X-Attested-Client-* (mutual attestation result). */
  attestedHeaders?: (req: IncomingMessage) => Record<string, string>;
}

export interface Forwarder {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** WebSocket (and any Upgrade) tunnel. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Destroy the keep-alive agent and the open upstream exchanges and tunnels. */
  close(): void;
}

export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;
export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
/** How long a tunnel stays half-closed (one side ended) before both sides are destroyed. */
const TUNNEL_CLOSE_GRACE_MS = 5_000;

/** RFC 9110 §7.6.1 plus the usual non-standard ones; `upgrade` is kept on upgrade requests only. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
]);

/** Errors raised before a connection to the upstream exists. */
const CONNECT_ERRORS = new Set([
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
]);

type Headers = string[]; // flat [name, value, name, value, …], the shape of rawHeaders

const NONE: ReadonlySet<string> = new Set();

function connectionTokens(raw: readonly string[]): ReadonlySet<string> {
  let tokens: Set<string> | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "connection") continue;
    for (const t of raw[i + 1]!.split(",")) {
      const v = t.trim().toLowerCase();
      if (v) (tokens ??= new Set()).add(v);
    }
  }
  return tokens ?? NONE;
}

/** Client errors surface through the response's 'close'; one shared listener, not one per request. */
const ignore = (): void => {};

/** Response headers without hop-by-hop ones (keeps duplicates such as Set-Cookie, and their case). */
function endToEnd(raw: readonly string[], keep: ReadonlySet<string> = NONE): Headers {
  const named = connectionTokens(raw);
  const out: Headers = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (!keep.has(lower) && (HOP_BY_HOP.has(lower) || named.has(lower))) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

function clientAddress(req: IncomingMessage): string | undefined {
  const a = req.socket?.remoteAddress;
  return a?.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

function declaredLength(req: IncomingMessage): number | undefined {
  const v = req.headers["content-length"];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** A JSON-RPC error response, or a destroyed response when headers already went out. */
function sendError(res: ServerResponse, status: number, message: string, close = false): void {
  sendJsonRpcError(res, status, message, close ? { Connection: "close" } : {});
}

/** An HTTP/1.1 error response on a raw (upgrade) socket, then the socket is ended. */
function sendSocketError(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = jsonRpcErrorBody(message);
  const reason = http.STATUS_CODES[status] ?? "Error";
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

function responseHead(status: number, reason: string | undefined, headers: readonly string[]): string {
  const safeReason = reason && /^[\t\x20-\x7e]*$/.test(reason) ? reason : (http.STATUS_CODES[status] ?? "");
  let head = `HTTP/1.1 ${status} ${safeReason}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return head + "\r\n";
}

function noDelay(d: Duplex): void {
  const s = d as Partial<Socket>;
  if (typeof s.setNoDelay === "function") s.setNoDelay(true);
}

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException | undefined)?.code ?? "EUNKNOWN";

export function createForwarder(opts: ForwardOptions): Forwarder {
  const { target, log } = opts;
  const hooks = opts.hooks ?? noHooks;
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const headersTimeoutMs = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const describe = target.kind === "http" ? `http://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}` : `unix:${target.path}`;
  const defaultHost = target.kind === "http" ? `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}` : "localhost";
  // lifo: under light load the most recently used sockets stay warm and the rest time out.
  // noDelay on every upstream socket once, at creation (SSE events must not wait for Nagle),
  // rather than a setNoDelay per request that defers through a 'socket' listener.
  const agent = new http.Agent({ keepAlive: true, scheduling: "lifo", noDelay: true });
  const endpoint: http.RequestOptions = target.kind === "http" ? { host: target.host, port: target.port } : { socketPath: target.path };
  /** Everything close() must tear down. */
  const open = new Set<() => void>();
  let closed = false;

  /** The headers sent upstream, from the client's raw headers. */
  function upstreamHeaders(req: IncomingMessage, isUpgrade: boolean): Headers {
    const raw = req.rawHeaders;
    const named = connectionTokens(raw);
    const out: Headers = [];
    let clientHost: string | undefined;
    let upgrade: string | undefined;
    let chunked = false;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      if (lower === "host") {
        clientHost ??= value;
        continue;
      }
      if (lower === "upgrade") upgrade ??= value;
      if (lower === "transfer-encoding") chunked = true;
      if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
      // Set by us below, never trusted from the client.
      if (lower.startsWith("x-forwarded-") || lower === "forwarded" || lower.startsWith("x-attested-client-")) continue;
      // The listener's HTTP server already answered 100-continue.
      if (lower === "expect") continue;
      out.push(name, value);
    }
    const host = opts.hostHeader || clientHost || defaultHost;
    out.unshift("Host", host);
    if (isUpgrade && upgrade !== undefined) out.push("Connection", "Upgrade", "Upgrade", upgrade);
    // The client's framing is not ours to pass on, but a body without Content-Length is re-chunked.
    else if (chunked) out.push("Transfer-Encoding", "chunked");
    const addr = clientAddress(req);
    if (addr) out.push("X-Forwarded-For", addr);
    out.push("X-Forwarded-Proto", "https");
    if (clientHost !== undefined) out.push("X-Forwarded-Host", clientHost);
    const attested = opts.attestedHeaders?.(req);
    if (attested) for (const [k, v] of Object.entries(attested)) out.push(k, v);
    return out;
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const t0 = performance.now();
    const method = req.method ?? "GET";
    const pathOf = (): string | undefined => (req.url ?? "/").split("?", 1)[0];
    req.on("error", ignore);
    if (closed) {
      req.resume();
      sendError(res, 503, "proxy is shutting down", true);
      return;
    }
    const declared = declaredLength(req);
    if (declared !== undefined && declared > bodyLimit) {
      // Answered before the upstream is contacted; the connection closes after the answer.
      req.resume();
      sendError(res, 413, `request body of ${declared} bytes exceeds the limit of ${bodyLimit} bytes`, true);
      log.debug({ method, path: pathOf(), status: 413, ms: Math.round(performance.now() - t0), outcome: "body-limit" }, "forward");
      return;
    }
    const hasBody = req.headers["transfer-encoding"] !== undefined || (declared ?? 0) > 0;

    let headers: Headers;
    try {
      headers = upstreamHeaders(req, false);
    } catch {
      req.resume();
      sendError(res, 500, "could not build the upstream request headers");
      return;
    }

    let upReq: http.ClientRequest | undefined;
    let upRes: IncomingMessage | undefined;
    /** Set once the exchange ended abnormally (or was torn down): later events are ignored. */
    let settled = false;
    let outcome = "ok";
    let requestDone = false;
    let bytesIn = 0;
    let bytesOut = 0;
    let sse = false;
    let headersTimer: NodeJS.Timeout | undefined;

    const onIdle = (): void => {
      if (settled || res.writableFinished) return;
      settled = true;
      if (!upRes && requestDone) {
        outcome = "timeout";
        hooks.upstreamError("timeout");
        tearDownUpstream();
        sendError(res, 504, `upstream ${describe} sent no data for ${idleTimeoutMs} ms`, true);
      } else if (!upRes) {
        outcome = "idle";
        tearDownUpstream();
        sendError(res, 408, `request body stalled: no data for ${idleTimeoutMs} ms`, true);
      } else {
        outcome = "idle";
        tearDownUpstream();
        res.destroy();
      }
    };
    const idle = setTimeout(onIdle, idleTimeoutMs);
    idle.unref();

    function tearDownUpstream(): void {
      clearTimeout(headersTimer);
      upRes?.destroy();
      upReq?.destroy();
    }

    const teardown = (): void => {
      if (settled) return;
      settled = true;
      outcome = "closed";
      tearDownUpstream();
      res.destroy();
    };
    open.add(teardown);

    res.once("close", () => {
      clearTimeout(idle);
      clearTimeout(headersTimer);
      open.delete(teardown);
      if (!res.writableFinished && !settled) {
        // The client went away: end the upstream exchange now, so the upstream sees its stream end.
        settled = true;
        outcome = "client-closed";
        tearDownUpstream();
      }
      if (sse) hooks.streamClosed("sse");
      const failed = outcome === "connect" || outcome === "timeout" || outcome === "reset";
      // The line is built only when it will be written: this runs once per request.
      if (!log.isLevelEnabled(failed ? "warn" : "debug")) return;
      const line = { method, path: pathOf(), status: res.headersSent ? res.statusCode : undefined, ms: Math.round(performance.now() - t0), bytesIn, bytesOut, outcome, ...(sse ? { sse } : {}) };
      if (failed) log.warn(line, "forward failed");
      else log.debug(line, "forward");
    });

    const startHeadersTimer = (): void => {
      requestDone = true;
      if (upRes || settled) return;
      headersTimer = setTimeout(() => {
        if (upRes || settled) return;
        settled = true;
        outcome = "timeout";
        hooks.upstreamError("timeout");
        tearDownUpstream();
        sendError(res, 504, `upstream ${describe} sent no response headers within ${headersTimeoutMs} ms`);
      }, headersTimeoutMs);
      headersTimer.unref();
    };

    const overLimit = (): void => {
      settled = true;
      outcome = "body-limit";
      tearDownUpstream();
      req.removeAllListeners("data");
      req.resume(); // discard the rest; the connection closes after the answer
      sendError(res, 413, `request body exceeds the limit of ${bodyLimit} bytes`, true);
    };

    const onResponse = (r: IncomingMessage): void => {
      clearTimeout(headersTimer);
      if (settled) {
        r.destroy();
        return;
      }
      upRes = r;
      r.on("error", () => {}); // handled through 'close'
      const status = r.statusCode ?? 502;
      const out = endToEnd(r.rawHeaders);
      sse = /^\s*text\/event-stream/i.test(r.headers["content-type"] ?? "");
      try {
        const reason = r.statusMessage && /^[\t\x20-\x7e]*$/.test(r.statusMessage) ? r.statusMessage : undefined;
        if (reason) res.writeHead(status, reason, out);
        else res.writeHead(status, out);
      } catch {
        settled = true;
        outcome = "reset";
        hooks.upstreamError("reset");
        tearDownUpstream();
        sendError(res, 502, `upstream ${describe} sent an invalid response head`);
        return;
      }
      if (sse) {
        hooks.streamOpened("sse");
        res.socket?.setNoDelay(true);
        res.flushHeaders();
      }
      r.on("data", (chunk: Buffer) => {
        bytesOut += chunk.length;
        idle.refresh();
        if (!res.write(chunk)) r.pause();
      });
      res.on("drain", () => r.resume());
      r.on("end", () => {
        if (!settled) res.end();
      });
      r.on("close", () => {
        if (r.complete || settled) return;
        // The upstream died mid-response: the client must see an abort, not a clean end.
        settled = true;
        outcome = "reset";
        hooks.upstreamError("reset");
        upReq?.destroy();
        res.destroy();
      });
    };

    const dispatch = (attempt: number): void => {
      let r: http.ClientRequest;
      try {
        r = http.request({ ...endpoint, agent, method, path: req.url ?? "/", headers });
      } catch {
        settled = true;
        outcome = "invalid";
        req.resume();
        sendError(res, 502, "request could not be forwarded (invalid header)");
        return;
      }
      upReq = r;
      r.on("response", onResponse);
      r.on("drain", () => req.resume());
      r.on("error", (err) => {
        if (settled || r !== upReq) return;
        const code = errCode(err);
        if (upRes) {
          // After the response head: a dead connection is a reset unless the response already completed.
          if (upRes.complete) return;
          settled = true;
          outcome = "reset";
          hooks.upstreamError("reset");
          upRes.destroy();
          res.destroy();
          return;
        }
        // A kept-alive socket the upstream closed meanwhile: safe to retry once when nothing was streamed.
        if (!hasBody && attempt === 0 && r.reusedSocket && code === "ECONNRESET") {
          clearTimeout(headersTimer);
          dispatch(1);
          return;
        }
        settled = true;
        clearTimeout(headersTimer);
        if (CONNECT_ERRORS.has(code)) {
          outcome = "connect";
          hooks.upstreamError("connect");
          sendError(res, 502, `upstream ${describe} unreachable (${code})`);
        } else {
          outcome = "reset";
          hooks.upstreamError("reset");
          sendError(res, 502, `upstream ${describe} closed the connection without a response (${code})`);
        }
      });
      if (!hasBody) {
        r.end();
        startHeadersTimer();
      }
    };

    dispatch(0);
    if (settled) return;

    if (hasBody) {
      req.on("data", (chunk: Buffer) => {
        if (settled) return;
        idle.refresh();
        bytesIn += chunk.length;
        // Checked before writing: no byte past the limit goes upstream.
        if (bytesIn > bodyLimit) return overLimit();
        if (!upReq!.write(chunk)) req.pause();
      });
      req.on("end", () => {
        if (settled) return;
        upReq!.end();
        startHeadersTimer();
      });
    } else {
      req.resume();
    }
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const t0 = performance.now();
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?", 1)[0];
    socket.on("error", () => {});
    if (closed) {
      sendSocketError(socket, 503, "proxy is shutting down");
      return;
    }
    let headers: Headers;
    try {
      headers = upstreamHeaders(req, true);
    } catch {
      sendSocketError(socket, 500, "could not build the upstream request headers");
      return;
    }
    let settled = false;
    let outcome = "ok";
    let status: number | undefined;
    let tunnel = false;
    let upReq: http.ClientRequest | undefined;
    let upSocket: Duplex | undefined;
    let logged = false;
    const logOnce = (): void => {
      if (logged) return;
      logged = true;
      open.delete(teardown);
      clearTimeout(idle);
      clearTimeout(headersTimer);
      const line = { method, path, status, ms: Math.round(performance.now() - t0), outcome, upgrade: true };
      if (outcome === "connect" || outcome === "timeout" || outcome === "reset") log.warn(line, "forward failed");
      else log.debug(line, "forward");
    };
    const teardown = (): void => {
      if (!settled) outcome = "closed";
      settled = true;
      upReq?.destroy();
      upSocket?.destroy();
      socket.destroy();
    };
    open.add(teardown);
    const idle = setTimeout(() => {
      if (!tunnel && !settled) outcome = "idle";
      settled = true;
      upReq?.destroy();
      upSocket?.destroy();
      socket.destroy();
    }, idleTimeoutMs);
    idle.unref();
    const headersTimer = setTimeout(() => {
      if (settled || status !== undefined) return;
      settled = true;
      outcome = "timeout";
      hooks.upstreamError("timeout");
      upReq?.destroy();
      sendSocketError(socket, 504, `upstream ${describe} sent no response headers within ${headersTimeoutMs} ms`);
    }, headersTimeoutMs);
    headersTimer.unref();
    socket.once("close", () => {
      if (!tunnel && !settled) {
        settled = true;
        outcome = "client-closed";
        upReq?.destroy();
      }
      logOnce();
    });

    let ur: http.ClientRequest;
    try {
      ur = upReq = http.request({ ...endpoint, agent, method, path: req.url ?? "/", headers });
    } catch {
      settled = true;
      outcome = "invalid";
      sendSocketError(socket, 502, "request could not be forwarded (invalid header)");
      return;
    }
    ur.setNoDelay(true);
    ur.on("error", (err) => {
      if (settled || status !== undefined) return;
      settled = true;
      clearTimeout(headersTimer);
      const code = errCode(err);
      const kind = CONNECT_ERRORS.has(code) ? "connect" : "reset";
      outcome = kind;
      hooks.upstreamError(kind);
      sendSocketError(
        socket,
        502,
        kind === "connect" ? `upstream ${describe} unreachable (${code})` : `upstream ${describe} closed the connection without a response (${code})`,
      );
    });
    ur.on("upgrade", (r: IncomingMessage, s: Duplex, upHead: Buffer) => {
      clearTimeout(headersTimer);
      status = r.statusCode;
      upSocket = s;
      s.on("error", () => {});
      if (settled || socket.destroyed) {
        s.destroy();
        return;
      }
      tunnel = true;
      hooks.streamOpened("websocket");
      const keep = new Set(["connection", "upgrade"]);
      socket.write(responseHead(r.statusCode ?? 101, r.statusMessage, endToEnd(r.rawHeaders, keep)));
      if (upHead.length) socket.write(upHead);
      if (head.length) s.write(head);
      noDelay(s);
      noDelay(socket);
      const touch = (): void => void idle.refresh();
      s.on("data", touch);
      socket.on("data", touch);
      // Pipes carry the data and each side's end (FIN) to the other. Once either side has ended or
      // closed, the other gets a short grace to finish (a closing handshake), then both are destroyed.
      s.pipe(socket);
      socket.pipe(s);
      let grace: NodeJS.Timeout | undefined;
      const winding = (): void => {
        grace ??= setTimeout(() => {
          s.destroy();
          socket.destroy();
        }, Math.min(idleTimeoutMs, TUNNEL_CLOSE_GRACE_MS));
        grace.unref();
      };
      let closedOnce = false;
      const onClose = (other: Duplex) => (hadError: boolean): void => {
        if (hadError) other.destroy();
        else other.end();
        winding();
        if (s.destroyed && socket.destroyed && !closedOnce) {
          closedOnce = true;
          clearTimeout(grace);
          hooks.streamClosed("websocket");
        }
      };
      s.on("end", winding);
      socket.on("end", winding);
      s.once("close", onClose(socket));
      socket.once("close", onClose(s));
    });
    ur.on("response", (r: IncomingMessage) => {
      // Not upgraded: relay the answer as a plain response, then close the connection.
      clearTimeout(headersTimer);
      status = r.statusCode;
      r.on("error", () => {});
      if (settled || socket.destroyed) {
        r.destroy();
        return;
      }
      const out = endToEnd(r.rawHeaders);
      out.push("Connection", "close");
      socket.write(responseHead(r.statusCode ?? 502, r.statusMessage, out));
      r.on("data", (chunk: Buffer) => {
        idle.refresh();
        if (!socket.write(chunk)) r.pause();
      });
      socket.on("drain", () => r.resume());
      r.on("end", () => socket.end());
      r.on("close", () => {
        if (r.complete) return;
        settled = true;
        outcome = "reset";
        hooks.upstreamError("reset");
        socket.destroy();
      });
    });
    ur.end();
  }

  function close(): void {
    closed = true;
    for (const teardown of [...open]) teardown();
    open.clear();
    agent.destroy();
  }

  return { handle, upgrade, close };
}
