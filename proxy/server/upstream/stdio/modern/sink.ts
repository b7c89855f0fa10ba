/**
 * The HTTP answer of one modern request: the messages for it, already carrying the client's own
 * ids, on its own response. The form is chosen at the first message: the answer alone goes out
 * as `application/json` when the client accepts that; anything that comes first (progress, a log
 * message, a subscription acknowledgement) opens an SSE stream that the answer then ends.
 */
import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { ProxyHooks } from "../../../hooks.js";
import type { Id, Rejection } from "./era.js";

/** Comment frames on an open stream, so that quiet subscriptions survive idle intermediaries. */
const KEEPALIVE_MS = 15_000;
/**
 * Bytes an event stream may hold unread by its client. Past it the client is taken as gone (its
 * request is cancelled like any other it leaves): a shared child must not make the proxy buffer
 * without bound for one slow reader.
 */
const MAX_UNREAD = 64 * 1024 * 1024;

/** JSON-RPC errors a client acts on by their HTTP status too (the spec's and the SDK's mapping); any other error is in-band (200). */
function statusOf(m: Record<string, unknown>): number {
  const code = (m.error as { code?: unknown } | undefined)?.code;
  if (code === -32601) return 404;
  if (code === -32700 || code === -32600 || code === -32020 || code === -32021 || code === -32022) return 400;
  return 200;
}

export interface Accepts {
  json: boolean;
  sse: boolean;
}

/** What the Accept header allows; no header allows both. */
export function accepts(headers: IncomingHttpHeaders): Accepts {
  const v = headers.accept;
  if (v === undefined || v === "") return { json: true, sse: true };
  const types = v
    .toLowerCase()
    .split(",")
    .map((t) => t.split(";")[0]!.trim());
  const any = types.includes("*/*");
  return {
    json: any || types.includes("application/json") || types.includes("application/*"),
    sse: any || types.includes("text/event-stream") || types.includes("text/*"),
  };
}

/** Writes a JSON-RPC error answer (with the request's id and any data) unless the response is already under way. */
export function sendError(res: ServerResponse, status: number, error: { code: number; message: string; data?: unknown }, id: Id | null, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify({ jsonrpc: "2.0", id, error });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function reject(res: ServerResponse, r: Rejection): void {
  sendError(res, r.status, { code: r.code, message: r.message, ...(r.data !== undefined && { data: r.data }) }, r.id);
}

export class ResponseSink {
  private state: "waiting" | "json" | "sse" | "done" = "waiting";
  private keepAlive: NodeJS.Timeout | undefined;
  /** Notifications dropped because the client accepts no event stream. */
  dropped = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly accept: Accepts,
    private readonly hooks: ProxyHooks,
  ) {}

  /** Whether the client can still be answered. */
  get open(): boolean {
    return this.state !== "done" && !this.res.destroyed;
  }

  /** A message for the client; `last` is the answer, after which nothing follows. */
  send(m: Record<string, unknown>, last: boolean): void {
    if (!this.open) return;
    if (this.state === "waiting") {
      if (last && this.accept.json) {
        this.state = "done";
        const body = JSON.stringify(m);
        this.res.writeHead(statusOf(m), { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
        this.res.end(body);
        return;
      }
      if (!this.accept.sse) {
        // Only JSON accepted: a notification has nowhere to go, and the answer is still to come.
        this.dropped++;
        return;
      }
      this.openStream();
    }
    this.res.write(`event: message\ndata: ${JSON.stringify(m)}\n\n`);
    if (last) this.end();
    else if (this.res.writableLength > MAX_UNREAD) this.res.destroy();
  }

  /** Ends the answer without a (further) message: cancelled, or the stream is over. */
  end(): void {
    if (this.state === "done") return;
    const streaming = this.state === "sse";
    this.state = "done";
    if (this.keepAlive) clearInterval(this.keepAlive);
    if (this.res.destroyed) return;
    if (streaming) this.res.end();
    // Nothing was sent yet: an answer that never came must not look like an empty success.
    else this.res.destroy();
  }

  private openStream(): void {
    this.state = "sse";
    this.res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" });
    this.res.flushHeaders();
    this.hooks.streamOpened("sse");
    this.res.once("close", () => {
      clearInterval(this.keepAlive);
      this.hooks.streamClosed("sse");
    });
    this.keepAlive = setInterval(() => {
      if (this.state === "sse" && !this.res.destroyed) this.res.write(": keepalive\n\n");
    }, KEEPALIVE_MS);
    this.keepAlive.unref();
  }
}
