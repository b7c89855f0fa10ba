/**
 * The legacy HTTP+SSE transport: `GET /sse` opens a session (and its child) on one long-lived
 * event stream, `POST /message?sessionId=…` carries the client's messages to it. The SDK's SSE
 * server transport speaks the protocol; the session ends with the stream.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";
import type { ProxyHooks } from "../../hooks.js";
import { readJsonBody } from "./body.js";
import type { Downstream, Opener } from "./session.js";
import type { Sessions } from "./sessions.js";

/** Keep-alive comment on legacy SSE streams (the Streamable HTTP transport does its own). */
const LEGACY_SSE_KEEPALIVE_MS = 15_000;

export interface LegacyOptions {
  sessions: Sessions;
  /** Who a request comes from: whose share a new session counts against, and who may use it. */
  clientOf: (req: IncomingMessage) => Opener;
  bodyLimit: number;
  hooks: ProxyHooks;
  log: Logger;
}

/** A session's HTTP side over legacy SSE: the one stream, which carries every message. */
class SseDownstream implements Downstream {
  constructor(readonly transport: SSEServerTransport) {}
  send(m: JSONRPCMessage): Promise<void> {
    return this.transport.send(m);
  }
  close(): Promise<void> {
    return this.transport.close();
  }
}

export function legacyEndpoints(o: LegacyOptions): {
  sse(req: IncomingMessage, res: ServerResponse): Promise<void>;
  message(req: IncomingMessage, res: ServerResponse, query: string): Promise<void>;
} {
  const { sessions, bodyLimit, hooks, log } = o;

  async function sse(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "GET") {
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "GET" });
      return;
    }
    // The transport mints the session id; the child's log lines are named after it.
    const t = new SSEServerTransport("/message", res);
    const s = await sessions.open(t.sessionId, "sse", o.clientOf(req), res);
    if (!s) return;
    t.onmessage = (m) => s.fromClient(m);
    t.onerror = (err) => log.debug({ session: s.tag, err: err.message }, "SSE transport error");
    t.onclose = () => void s.end("stream-closed");
    s.down = new SseDownstream(t);
    sessions.publish(s);
    if (s.ended || res.destroyed) {
      await s.end("stream-closed");
      return;
    }
    await t.start(); // writes the head and the endpoint event at once
    hooks.streamOpened("sse");
    const keepAlive = setInterval(() => {
      if (!res.writableEnded) res.write(": keepalive\n\n");
    }, LEGACY_SSE_KEEPALIVE_MS);
    keepAlive.unref();
    res.once("close", () => {
      clearInterval(keepAlive);
      hooks.streamClosed("sse");
    });
  }

  async function message(req: IncomingMessage, res: ServerResponse, query: string): Promise<void> {
    if (req.method !== "POST") {
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "POST" });
      return;
    }
    const sid = new URLSearchParams(query).get("sessionId");
    if (!sid) {
      sendJsonRpcError(res, 400, "Bad Request: sessionId query parameter is required");
      return;
    }
    // Another principal's session is as unknown to this request as one that never was.
    const s = sessions.find(sid, "sse", o.clientOf(req).principal);
    const t = s?.down instanceof SseDownstream ? s.down.transport : undefined;
    if (!s || !t) {
      sendJsonRpcError(res, 404, "Session not found", {}, -32001);
      return;
    }
    s.touch();
    const r = await readJsonBody(req, res, bodyLimit);
    if (!r.ok) return;
    if (s.ended) {
      sendJsonRpcError(res, 404, "Session not found", {}, -32001);
      return;
    }
    await t.handlePostMessage(req, res, r.value);
  }

  return { sse, message };
}
