/**
 * The Streamable HTTP endpoint (`/mcp`), era by era. Legacy (2025-era) clients: an initialize
 * request without a session opens one (and its child); every other request names its session in
 * Mcp-Session-Id; the SDK's web-standard server transport speaks the protocol, and this file
 * admits, looks up, and counts streams. Modern (2026-07-28) clients have no session: a POST that
 * names no live session and that era.ts finds modern goes to the shared pool (modern/), whatever
 * stale Mcp-Session-Id it carries.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { isInitializeRequest, type JSONRPCMessage, type RequestId } from "@modelcontextprotocol/sdk/types.js";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";
import type { ProxyHooks } from "../../hooks.js";
import { readJsonBody } from "./body.js";
import { classify, type ModernMessage } from "./modern/era.js";
import { reject } from "./modern/sink.js";
import type { Downstream, Opener, Session } from "./session.js";
import type { Sessions } from "./sessions.js";
import { isEventStream, webRequest, writeResponse } from "./web.js";

export interface StreamableOptions {
  sessions: Sessions;
  /** Who a request comes from: whose share a new session counts against, and who may use it. */
  clientOf: (req: IncomingMessage) => Opener;
  /** Serves a POST that era.ts classified modern. */
  modern: (req: IncomingMessage, res: ServerResponse, message: ModernMessage) => Promise<void>;
  bodyLimit: number;
  hooks: ProxyHooks;
  log: Logger;
}

/** A session's HTTP side over Streamable HTTP: the transport that answers its requests. */
class StreamableDownstream implements Downstream {
  constructor(readonly transport: WebStandardStreamableHTTPServerTransport) {}
  send(m: JSONRPCMessage, related?: RequestId): Promise<void> {
    return related === undefined ? this.transport.send(m) : this.transport.send(m, { relatedRequestId: related });
  }
  close(): Promise<void> {
    return this.transport.close();
  }
}

function transportOf(s: Session): WebStandardStreamableHTTPServerTransport | undefined {
  return s.down instanceof StreamableDownstream ? s.down.transport : undefined;
}

function sessionIdOf(req: IncomingMessage): string | undefined {
  const v = req.headers["mcp-session-id"];
  return Array.isArray(v) ? v[0] : v;
}

function notFound(res: ServerResponse): void {
  sendJsonRpcError(res, 404, "Session not found", {}, -32001);
}

export function streamableEndpoint(o: StreamableOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { sessions, bodyLimit, hooks, log } = o;

  function attach(s: Session): WebStandardStreamableHTTPServerTransport {
    const t = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => s.id,
      onsessioninitialized: () => sessions.publish(s),
      maxRequestBodySize: bodyLimit,
    });
    t.onmessage = (m) => s.fromClient(m);
    t.onerror = (err) => log.debug({ session: s.tag, err: err.message }, "streamable HTTP transport error");
    t.onclose = () => void s.end("delete");
    s.down = new StreamableDownstream(t);
    return t;
  }

  /** Hands the exchange to the transport and writes its answer, counting the streams it opens. */
  async function exchange(s: Session, t: WebStandardStreamableHTTPServerTransport, req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    if (req.method === "POST") {
      s.busy++;
      res.once("close", () => {
        s.busy--;
        s.touch();
      });
    }
    let request: Request;
    try {
      request = webRequest(req, res);
    } catch {
      sendJsonRpcError(res, 400, "Bad Request: unreadable request headers");
      return;
    }
    const response = await t.handleRequest(request, { parsedBody: body });
    if (isEventStream(response) && !res.destroyed) {
      const standalone = req.method === "GET";
      hooks.streamOpened("sse");
      if (standalone) s.getStreams++;
      res.once("close", () => {
        hooks.streamClosed("sse");
        if (standalone) s.getStreams--;
      });
    }
    await writeResponse(res, response);
  }

  return async function handleMcp(req, res) {
    const method = req.method ?? "";
    if (method !== "POST" && method !== "GET" && method !== "DELETE") {
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "GET, POST, DELETE" });
      return;
    }
    const sid = sessionIdOf(req);
    const opener = o.clientOf(req);
    // Another principal's session is as unknown to this request as one that never was.
    const known = sid ? sessions.find(sid, "streamable", opener.principal) : undefined;
    if (method !== "POST" && !sid) {
      // No session, no stream: the 2026-07-28 answer, and no legacy client asks this.
      sendJsonRpcError(res, 405, "Method not allowed.", { Allow: "POST" });
      return;
    }
    if (method !== "POST" || known) {
      const s = known;
      const t = s && transportOf(s);
      if (!s || !t) return notFound(res);
      s.touch();
      let body: unknown;
      if (method === "POST") {
        const r = await readJsonBody(req, res, bodyLimit);
        if (!r.ok) return;
        body = r.value;
        if (s.ended) return notFound(res);
      }
      await exchange(s, t, req, res, body);
      return;
    }
    // POST naming no live session: a modern request, or an initialize that starts a session.
    const r = await readJsonBody(req, res, bodyLimit);
    if (!r.ok) return;
    const era = classify(req.headers, r.value);
    if (era.era === "modern") return o.modern(req, res, era.message);
    if (era.era === "reject") return reject(res, era.rejection);
    if (sid) return notFound(res);
    const msgs = Array.isArray(r.value) ? r.value : [r.value];
    if (!msgs.some((m) => isInitializeRequest(m))) {
      sendJsonRpcError(res, 400, "Bad Request: No valid session ID provided");
      return;
    }
    const s = await sessions.open(randomUUID(), "streamable", opener, res);
    if (!s) return;
    if (s.ended) {
      sendJsonRpcError(res, 503, "Service Unavailable: shutting down");
      return;
    }
    const t = attach(s);
    await t.start();
    // Refused by the SDK (headers, protocol) → never initialized → nothing keeps the child.
    res.once("close", () => {
      if (t.sessionId === undefined && !s.ended) void s.end("not-initialized");
    });
    await exchange(s, t, req, res, r.value);
  };
}
