/**
 * A modern (MCP 2026-07-28) POST to /mcp once era.ts has let it through: a request goes to the
 * pool and is answered on its own response (sink.ts); a notification is taken with 202.
 *
 * Cancellation on HTTP is the client closing its response stream: the child then gets
 * `notifications/cancelled` for that request. A client may also POST `notifications/cancelled`
 * naming its own request id (the v2 SDK does when it closes a subscription). Ids are the client's
 * own and collide across clients, so such a notification is matched under a client key:
 * - the SHA-256 of the TLS client certificate, when the connection presented one (client
 *   attestation): one identity, whichever connection it uses;
 * - otherwise the connection itself. HTTP gives nothing else that ties two connections to one
 *   client, and an address is shared (NAT, loopback, a gateway), so keying by it would let one
 *   client cancel another's request by guessing a small integer. Over HTTP/1.1 a connection carries
 *   one exchange at a time, so without a certificate such a notification finds nothing to cancel;
 *   the stream close, which the client makes as well, is what cancels.
 * Within a key a cancellation applies only when exactly one request in flight has that id.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { ProxyHooks } from "../../../hooks.js";
import { type Id, mismatchRejection, type ModernMessage } from "./era.js";
import { Inflight } from "./member.js";
import type { ModernPool } from "./pool.js";
import { accepts, reject, ResponseSink, sendError } from "./sink.js";

export interface ModernEndpointOptions {
  pool: ModernPool;
  hooks: ProxyHooks;
  log: Logger;
}

const keys = new WeakMap<Socket, string>();
let connections = 0;

/** Who may cancel a request by notification (see the comment at the top). */
export function clientKeyOf(req: IncomingMessage): string {
  const socket = req.socket;
  let key = keys.get(socket);
  if (key === undefined) {
    const tls = socket as Partial<TLSSocket>;
    const raw = typeof tls.getPeerCertificate === "function" ? (tls.getPeerCertificate() as { raw?: Buffer } | null)?.raw : undefined;
    key = raw && raw.length > 0 ? `cert:${createHash("sha256").update(raw).digest("hex")}` : `conn:${++connections}`;
    keys.set(socket, key);
  }
  return key;
}

function isJsonContentType(req: IncomingMessage): boolean {
  const ct = req.headers["content-type"];
  return ct !== undefined && ct.split(";")[0]!.trim().toLowerCase() === "application/json";
}

export function modernEndpoint(o: ModernEndpointOptions): (req: IncomingMessage, res: ServerResponse, message: ModernMessage) => Promise<void> {
  const { pool, hooks, log } = o;

  return async function handleModern(req, res, message) {
    const id = message.id ?? null;
    if (!isJsonContentType(req)) {
      sendError(res, 415, { code: -32000, message: "Unsupported Media Type: Content-Type must be application/json" }, id);
      return;
    }
    if (message.id === undefined) {
      if (message.method === "notifications/cancelled") pool.cancelByClient(clientKeyOf(req), message.params ?? {});
      else if (!pool.forward(message as unknown as Record<string, unknown>)) log.debug({ method: message.method }, "client notification with no modern child to take it; dropped");
      res.writeHead(202).end();
      return;
    }
    const request = message as ModernMessage & { id: Id };
    if (request.method === "tools/call") {
      const name = request.params?.name;
      const m = pool.toolHeaders.check(typeof name === "string" ? name : undefined, request.params?.arguments, req.headers);
      if (m) return reject(res, mismatchRejection(request.id, m));
    }
    const accept = accepts(req.headers);
    if (!accept.json && !accept.sse) {
      sendError(res, 406, { code: -32000, message: "Not Acceptable: the client must accept application/json or text/event-stream" }, request.id);
      return;
    }
    const sink = new ResponseSink(res, accept, hooks);
    let inflight: Inflight | undefined;
    let gone = false;
    res.once("close", () => {
      gone = true;
      if (inflight) pool.cancel(inflight, "the client closed the response stream");
    });
    const r = await pool.submit(clientKeyOf(req), request, sink);
    if (r instanceof Inflight) {
      inflight = r;
      if (gone) pool.cancel(r, "the client closed the response stream");
    } else if (r) {
      reject(res, r);
    }
  };
}
