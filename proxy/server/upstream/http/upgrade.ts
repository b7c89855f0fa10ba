/**
 * WebSocket (and any Upgrade) tunnels. Upgrades stay on node:http, whose 'upgrade' event hands
 * over the upstream socket as is; the two sockets are then piped both ways. An upstream that
 * answers without upgrading has its answer relayed as a plain response, and both connections
 * close: an upstream connection is never reused after an upgrade request, since what the upstream
 * made of it (a body it still waits for, a protocol switch it half began) is unknown, and the next
 * client's request would be read in that state (request smuggling). An Upgrade request that
 * declares a body is refused (400) before anything goes upstream, for the same reason.
 * The idle timeout is refreshed by bytes either way; a tunnel with one side ended gets a short
 * grace to finish its closing handshake, then both sides are destroyed.
 */
import http from "node:http";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { UPGRADE_KEEP, endToEnd, requestHeaders, responseHead, type Headers } from "./headers.js";
import { INVALID_REQUEST_MESSAGE, errCode, failureMessage, headersTimeoutMessage, isUpstreamFailure, sendSocketError, upstreamFailure, type Outcome } from "./failure.js";
import type { UpstreamTarget } from "./pool.js";
import type { ForwarderContext } from "./context.js";

/** What every tunnel of one forwarder shares; `closed` and `open` are the forwarder's live state. */
export interface UpgradeContext extends ForwarderContext {
  readonly target: UpstreamTarget;
}

export interface Tunnels {
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends the upgrade client's kept-alive connections (open tunnels are torn down through `open`). */
  close(): void;
}

/** How long a tunnel stays half-closed (one side ended) before both sides are destroyed. */
const TUNNEL_CLOSE_GRACE_MS = 5_000;

function noDelay(d: Duplex): void {
  const s = d as Partial<Socket>;
  if (typeof s.setNoDelay === "function") s.setNoDelay(true);
}

/** Why an Upgrade request is refused for carrying (or announcing) a body, or null. */
export function upgradeBodyRefusal(req: IncomingMessage): string | null {
  const te = req.headers["transfer-encoding"];
  const cl = req.headers["content-length"];
  if (te !== undefined) return "Bad Request: an Upgrade request carries no body (Transfer-Encoding)";
  if (cl !== undefined && !/^0+$/.test(cl.trim())) return "Bad Request: an Upgrade request carries no body (Content-Length)";
  return null;
}

export function createTunnels(ctx: UpgradeContext): Tunnels {
  const { target, describe, headersTimeoutMs, idleTimeoutMs, log, hooks } = ctx;
  // No keep-alive: a 101 hands the socket over anyway, and any other answer ends its use.
  const agent = new http.Agent({ keepAlive: false, noDelay: true });
  const endpoint: http.RequestOptions = target.kind === "http" ? { host: target.host, port: target.port } : { socketPath: target.path };

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const t0 = performance.now();
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?", 1)[0];
    socket.on("error", () => {});
    if (ctx.closed) {
      sendSocketError(socket, 503, "proxy is shutting down");
      return;
    }
    const bodyRefusal = upgradeBodyRefusal(req);
    if (bodyRefusal) {
      sendSocketError(socket, 400, bodyRefusal);
      return;
    }
    let headers: Headers;
    try {
      headers = requestHeaders(req, true, ctx.rules);
    } catch {
      sendSocketError(socket, 500, "could not build the upstream request headers");
      return;
    }
    let settled = false;
    let outcome: Outcome = "ok";
    let status: number | undefined;
    let tunnel = false;
    let upReq: http.ClientRequest | undefined;
    let upSocket: Duplex | undefined;
    let logged = false;
    const logOnce = (): void => {
      if (logged) return;
      logged = true;
      ctx.open.delete(entry);
      clearTimeout(idle);
      clearTimeout(headersTimer);
      const line = { method, path, status, ms: Math.round(performance.now() - t0), outcome, upgrade: true };
      if (isUpstreamFailure(outcome)) log.warn(line, "forward failed");
      else log.debug(line, "forward");
    };
    const entry = {
      teardown: (): void => {
        if (!settled) outcome = "closed";
        settled = true;
        upReq?.destroy();
        upSocket?.destroy();
        socket.destroy();
      },
    };
    ctx.open.add(entry);
    const idle = setTimeout(() => {
      if (!tunnel && !settled) outcome = "idle";
      settled = true;
      upReq?.destroy();
      upSocket?.destroy();
      socket.destroy();
    }, idleTimeoutMs);
    idle.unref();
    // Only when configured: without it the idle timer above is what ends a hung upstream.
    const headersTimer =
      headersTimeoutMs === null
        ? undefined
        : setTimeout(() => {
            if (settled || status !== undefined) return;
            settled = true;
            outcome = "timeout";
            hooks.upstreamError("timeout");
            upReq?.destroy();
            sendSocketError(socket, 504, headersTimeoutMessage(describe, headersTimeoutMs));
          }, headersTimeoutMs);
    headersTimer?.unref();
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
      sendSocketError(socket, 502, INVALID_REQUEST_MESSAGE);
      return;
    }
    ur.setNoDelay(true);
    ur.on("error", (err) => {
      if (settled || status !== undefined) return;
      settled = true;
      clearTimeout(headersTimer);
      const code = errCode(err);
      const kind = upstreamFailure(code);
      outcome = kind;
      hooks.upstreamError(kind);
      sendSocketError(socket, 502, failureMessage(kind, describe, code));
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
      socket.write(responseHead(r.statusCode ?? 101, r.statusMessage, endToEnd(r.rawHeaders, UPGRADE_KEEP)));
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
        grace ??= setTimeout(
          () => {
            s.destroy();
            socket.destroy();
          },
          Math.min(idleTimeoutMs, TUNNEL_CLOSE_GRACE_MS),
        );
        grace.unref();
      };
      let closedOnce = false;
      const onClose =
        (other: Duplex) =>
        (hadError: boolean): void => {
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
      const upstreamSocket = r.socket;
      r.on("end", () => {
        socket.end();
        upstreamSocket?.destroy();
      });
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

  return { upgrade, close: () => agent.destroy() };
}
