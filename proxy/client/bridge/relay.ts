/**
 * The stdio bridge's HTTP side: each message the desktop client writes becomes one POST to the
 * remote, its body the very line the client wrote, and every message of the answer (JSON or SSE)
 * goes back to the client as the remote sent it. The era is read from each message, never
 * negotiated by the bridge: a message whose `_meta` names a protocol version is 2026-07-28 and
 * gets MCP-Protocol-Version, Mcp-Method, Mcp-Name and Mcp-Param-* from itself; anything else is
 * legacy and gets the session the last `initialize` opened. JSON-RPC errors from the remote reach
 * the client with their own code, message, data and id, since clients decide between falling back
 * and failing on them; a failure that is not JSON-RPC becomes -32000 for that request, never
 * silence.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { MCP_PROTOCOL_VERSION_HEADER } from "../../core/protocol.js";
import { type ConnectionVerdict, rejectionOf } from "../connector.js";
import { SseParser, textChunks } from "./frames.js";
import {
  describe,
  envelopeVersion,
  HEADER_SESSION,
  isJsonRpcError,
  isNotification,
  isObject,
  isRequest,
  isResponse,
  type Message,
  mediaType,
  modernHeaders,
  type RequestId,
  snippet,
  ToolHeaders,
} from "./wire.js";

/** JSON-RPC "server error": the code of every answer the bridge itself gives. */
export const BRIDGE_ERROR = -32000;
const ACCEPT = "application/json, text/event-stream";
/** Reopening the legacy event stream: the first wait, doubled per failure, and the failures tolerated in a row. */
const REOPEN_MS = 500;
const REOPEN_FAILURES = 4;
const QUIET_STREAM_MS = 10_000;
/** How long legacy requests after the handshake wait for the event stream to open. */
const STREAM_WAIT_MS = 3000;

export type Fetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface RelayOptions {
  url: URL;
  /** The attested fetch: every connection it opens is verified first. */
  fetch: Fetch;
  /** One message to the desktop client (the caller adds the newline). */
  write: (line: string) => void;
  log: (line: string) => void;
  /** A connection failed attestation: nothing was sent on it, and the bridge must end. */
  onRejected: (v: ConnectionVerdict) => void;
}

export function errorText(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  // fetch wraps the real reason ("ECONNREFUSED", a TLS alert) in `cause`.
  for (let i = 0; cur instanceof Error && i < 5; i++, cur = cur.cause) {
    if (!parts.includes(cur.message)) parts.push(cur.message);
  }
  return parts.length ? parts.join(": ") : String(e);
}

interface Pending {
  method: string;
  modern: boolean;
  /** The HTTP exchange that carries it: aborting it is how a 2026-07-28 request is cancelled. */
  exchange: AbortController;
  cancelled: boolean;
}

const singleLine = (text: string): boolean => !/[\r\n]/.test(text);

/** undici publishes here right before a request's first byte is written (docs: DiagnosticsChannel). */
const SEND_HEADERS = "undici:client:sendHeaders";
/** After the GET is on the wire, the time the remote is given to take it before the held requests go. */
const WRITTEN_GRACE_MS = 100;

/**
 * Runs a GET and calls `written` shortly after undici writes it. Many servers send the head of an
 * event stream only with its first event (Node's writeHead does not flush), so the head cannot say
 * when the stream is open; the request having left can, nearly.
 */
async function whenWritten(get: () => Promise<Response>, written: () => void): Promise<Response> {
  const onSend = (msg: unknown): void => {
    if ((msg as { request?: { method?: string } }).request?.method === "GET") setTimeout(written, WRITTEN_GRACE_MS).unref();
  };
  subscribe(SEND_HEADERS, onSend);
  try {
    return await get();
  } finally {
    unsubscribe(SEND_HEADERS, onSend);
  }
}

export class HttpRelay {
  private readonly pending = new Map<RequestId, Pending>();
  private readonly tools = new ToolHeaders();
  private session: string | undefined;
  private legacyVersion: string | undefined;
  /** Bumped by each `initialize`: an event stream of an older session stops. */
  private generation = 0;
  private streaming = -1;
  /** Legacy messages wait for the head of the answer to the latest `initialize` (its session id). */
  private handshake: Promise<void> = Promise.resolve();
  /**
   * Open once the legacy event stream is (or cannot be): some 2025 servers send a tool call's
   * elicitation or sampling request on that stream, and drop it when none is open. An HTTP client
   * opens it before its first request; a stdio client writes the request at once, so the bridge
   * holds it until then.
   */
  private streamOpen: Promise<void> = Promise.resolve();
  private markStreamOpen: () => void = () => {};
  private readonly all = new AbortController();
  private stream = new AbortController();
  private closed = false;

  constructor(private readonly o: RelayOptions) {}

  /** One line the desktop client wrote. */
  send(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (e) {
      this.o.log(`stdin: not JSON, answered with a parse error: ${errorText(e)}`);
      return this.o.write(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: `Parse error: ${errorText(e)}` } }));
    }
    // Batches exist only in 2025-03-26, a legacy revision.
    if (Array.isArray(parsed)) return void this.legacy(line, parsed.filter(isObject) as Message[]);
    if (!isObject(parsed)) return this.o.write(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request: not a JSON-RPC object" } }));
    const m = parsed as Message;
    const version = envelopeVersion(m);
    if (version === undefined) return void this.legacy(line, [m]);
    // On 2026-07-28 HTTP closing the request's stream is the cancellation; no notification is sent.
    if (m.method === "notifications/cancelled") return this.cancel(m, false);
    void this.exchange(line, [m], modernHeaders(m, version, this.tools), true);
  }

  private async legacy(line: string, msgs: Message[]): Promise<void> {
    if (msgs.some((m) => isRequest(m) && m.method === "initialize")) {
      // A handshake opens a new session: it carries no session id and no version header.
      let opened!: () => void;
      const head = new Promise<void>((r) => (opened = r));
      const before = this.handshake;
      this.handshake = head;
      await before;
      return this.exchange(line, msgs, {}, false, opened);
    }
    await this.handshake;
    if (!msgs.some((m) => m.method === "notifications/initialized")) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.streamOpen, new Promise<void>((r) => (timer = setTimeout(r, STREAM_WAIT_MS)))]);
      clearTimeout(timer);
    }
    const sent = this.exchange(line, msgs, this.legacyHeaders(), false);
    const cancel = msgs.find((m) => m.method === "notifications/cancelled");
    if (cancel) {
      // 2025 servers are told; the exchange is aborted only once they have been.
      await sent;
      this.cancel(cancel, true);
    }
  }

  private legacyHeaders(): Record<string, string> {
    return { ...(this.session && { [HEADER_SESSION]: this.session }), ...(this.legacyVersion && { [MCP_PROTOCOL_VERSION_HEADER]: this.legacyVersion }) };
  }

  private cancel(m: Message, told: boolean): void {
    const id = isObject(m.params) ? (m.params.requestId as RequestId | undefined) : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p) return;
    p.cancelled = true;
    p.exchange.abort();
    this.o.log(`${String(p.method)} (id ${String(id)}) cancelled by the client${told ? "" : ": its HTTP exchange is closed"}`);
  }

  /** POST one message (or a batch) and relay its answer; `onHead` runs once the head (or a failure) is in. */
  private async exchange(body: string, msgs: Message[], headers: Record<string, string>, modern: boolean, onHead?: () => void): Promise<void> {
    const requests = msgs.filter(isRequest);
    const exchange = new AbortController();
    for (const r of requests) this.pending.set(r.id!, { method: String(r.method), modern, exchange, cancelled: false });
    const what = describe(msgs);
    let stage = "the remote did not take the request";
    try {
      if (this.closed) return;
      const res = await this.o.fetch(this.o.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: ACCEPT, ...headers },
        body,
        signal: AbortSignal.any([exchange.signal, this.all.signal]),
      });
      // Only a 2xx answer to initialize opens a session: a 4xx to anything else (a server/discover
      // probe, say) may carry an Mcp-Session-Id that no later request must reuse.
      if (onHead && res.ok) {
        this.session = res.headers.get(HEADER_SESSION) ?? undefined;
        this.legacyVersion = undefined;
        this.generation++;
        this.markStreamOpen();
        this.streamOpen = new Promise((r) => (this.markStreamOpen = r));
      }
      onHead?.();
      stage = "the remote's answer broke off";
      await this.answer(res, requests, what, msgs);
    } catch (e) {
      onHead?.();
      this.failed(e, requests, what, stage);
    } finally {
      // A handshake whose last step failed has no stream to wait for.
      if (this.streaming !== this.generation && msgs.some((m) => m.method === "notifications/initialized")) this.markStreamOpen();
      for (const r of requests) {
        const p = this.pending.get(r.id!);
        if (p?.exchange !== exchange) continue;
        if (p.cancelled || this.closed) this.pending.delete(r.id!);
        else this.answerError(r.id!, "attestable-mcp bridge: the remote ended its answer without a response to this request");
      }
    }
  }

  private async answer(res: Response, requests: Message[], what: string, msgs: Message[]): Promise<void> {
    if (!res.ok) return this.refused(res, requests, what);
    const type = mediaType(res.headers.get("content-type"));
    if (requests.length === 0 || res.status === 202) {
      await res.body?.cancel().catch(() => {});
      // As the SDKs do: the standalone stream opens once the handshake is complete.
      if (msgs.some((m) => m.method === "notifications/initialized")) this.openEventStream();
      return;
    }
    if (type === "text/event-stream") {
      await this.readEvents(res, requests);
    } else if (type === "application/json") {
      this.fromRemote(await res.text(), requests);
    } else {
      await res.body?.cancel().catch(() => {});
      for (const r of requests)
        this.answerError(r.id!, `attestable-mcp bridge: the remote answered ${what} with HTTP ${res.status} and content type "${type}", neither JSON nor SSE`, { status: res.status });
    }
  }

  /** Relays an SSE body; resolves with the last event id and how many events came. */
  private async readEvents(res: Response, requests: Message[]): Promise<{ last: string | undefined; events: number }> {
    let events = 0;
    const parser = new SseParser((e) => {
      events++;
      if (e.event === "message") this.fromRemote(e.data, requests);
    });
    if (res.body) for await (const t of textChunks(res.body as unknown as AsyncIterable<Uint8Array>)) parser.push(t);
    return { last: parser.lastEventId, events };
  }

  /** A non-2xx answer: a JSON-RPC error body passes through as it is; anything else becomes -32000. */
  private async refused(res: Response, requests: Message[], what: string): Promise<void> {
    const text = await res.text().catch(() => "");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const rpc = isJsonRpcError(body) ? body : undefined;
    if (requests.length === 0) {
      this.o.log(`the remote refused ${what}: HTTP ${res.status}${rpc ? ` (${rpc.error.code} ${rpc.error.message})` : text ? `: ${snippet(text)}` : ""}`);
      return;
    }
    if (rpc) return this.fromRemote(text, requests);
    const detail = text ? `: ${snippet(text)}` : "";
    for (const r of requests) this.answerError(r.id!, `attestable-mcp bridge: the remote answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}${detail}`, { status: res.status });
  }

  /** One JSON text from the remote (a message or a batch), to the client. */
  private fromRemote(text: string, requests: Message[]): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      this.o.log(`the remote sent a message that is not JSON (dropped): ${errorText(e)}`);
      return;
    }
    if (Array.isArray(parsed)) for (const m of parsed) this.deliver(m, undefined, requests);
    else this.deliver(parsed, singleLine(text) ? text : undefined, requests);
  }

  private deliver(v: unknown, text: string | undefined, requests: Message[]): void {
    if (!isObject(v)) return;
    const m = v as Message;
    if (isResponse(m)) {
      // An error the remote could not tie to a request (id null: a 400 before the body was read)
      // belongs to the one request this exchange carried; code, message and data stay as sent.
      if ((m.id === null || m.id === undefined) && "error" in m && requests.length === 1) {
        m.id = requests[0]!.id!;
        text = undefined;
      }
      const p = m.id === null || m.id === undefined ? undefined : this.pending.get(m.id);
      if (p) {
        this.pending.delete(m.id!);
        // The client gave up on it and must not get it: 2026-07-28 clients forget the id.
        if (p.cancelled) return;
        if (p.modern && p.method === "tools/list" && "result" in m) {
          const excluded = this.tools.learn(m.result);
          for (const x of excluded) this.o.log(`warning: tool "${x.name}" removed from tools/list: its x-mcp-header annotation is invalid (${x.reason})`);
          if (excluded.length) text = undefined;
        }
        if (!p.modern && p.method === "initialize" && isObject(m.result) && typeof m.result.protocolVersion === "string") this.legacyVersion = m.result.protocolVersion;
      }
    } else if (isNotification(m) && m.method === "notifications/cancelled" && isObject(m.params)) {
      // A server ends a subscriptions/listen stream this way: that request is answered.
      this.pending.delete(m.params.requestId as RequestId);
    }
    this.o.write(text ?? JSON.stringify(m));
  }

  private failed(e: unknown, requests: Message[], what: string, stage: string): void {
    const r = rejectionOf(e);
    if (r) return this.o.onRejected(r.verdict);
    if (this.closed) return;
    const open = requests.filter((q) => this.pending.has(q.id!) && !this.pending.get(q.id!)!.cancelled);
    if (requests.length > 0 && open.length === 0) return;
    this.o.log(`forwarding ${what}: ${stage}: ${errorText(e)}`);
    for (const q of open) this.answerError(q.id!, `attestable-mcp bridge: ${stage}: ${errorText(e)}`);
  }

  private answerError(id: RequestId, message: string, data?: unknown): void {
    if (!this.pending.delete(id)) return;
    this.o.write(JSON.stringify({ jsonrpc: "2.0", id, error: { code: BRIDGE_ERROR, message, ...(data !== undefined && { data }) } }));
  }

  /** Answers every request still open with `message` (the remote failed attestation). */
  failAll(message: string): void {
    for (const [id, p] of [...this.pending]) if (!p.cancelled) this.answerError(id, message);
  }

  /** The legacy standalone GET stream: server-to-client requests (sampling, elicitation, roots) and notifications. */
  private openEventStream(): void {
    const generation = this.generation;
    if (this.streaming === generation) return;
    this.streaming = generation;
    const opened = this.markStreamOpen;
    // The stream of a session the client has left (it initialized again) is closed.
    this.stream.abort();
    const stream = (this.stream = new AbortController());
    const signal = AbortSignal.any([stream.signal, this.all.signal]);
    void (async () => {
      let failures = 0;
      let last: string | undefined;
      while (!this.closed && generation === this.generation && failures < REOPEN_FAILURES) {
        try {
          const res = await whenWritten(
            () =>
              this.o.fetch(this.o.url, {
                method: "GET",
                headers: { accept: "text/event-stream", ...this.legacyHeaders(), ...(last !== undefined && { "last-event-id": last }) },
                signal,
              }),
            opened,
          );
          opened();
          // 405: this server offers no standalone stream, which the spec allows.
          if (res.status === 405) return void (await res.body?.cancel().catch(() => {}));
          if (!res.ok || mediaType(res.headers.get("content-type")) !== "text/event-stream") {
            await res.body?.cancel().catch(() => {});
            throw new Error(`HTTP ${res.status}`);
          }
          const since = Date.now();
          const read = await this.readEvents(res, []);
          last = read.last ?? last;
          // A stream that closes at once, again and again, is given up like one that cannot open;
          // one the server ends after a quiet while (an idle timeout) is simply opened again.
          failures = read.events > 0 || Date.now() - since > QUIET_STREAM_MS ? 0 : failures + 1;
        } catch (e) {
          opened();
          const r = rejectionOf(e);
          if (r) return this.o.onRejected(r.verdict);
          if (signal.aborted) return;
          failures++;
          this.o.log(`the remote's event stream: ${errorText(e)}${failures < REOPEN_FAILURES ? "; opening it again" : "; giving up"}`);
        }
        await new Promise((r) => setTimeout(r, REOPEN_MS * 2 ** failures).unref());
      }
    })();
  }

  /** Ends the legacy session the bridge opened (DELETE); a 2026-07-28 exchange has none. */
  async endSession(): Promise<void> {
    if (!this.session) return;
    const res = await this.o.fetch(this.o.url, { method: "DELETE", headers: this.legacyHeaders(), signal: this.all.signal });
    await res.body?.cancel().catch(() => {});
    this.session = undefined;
  }

  /** Aborts every exchange; nothing more is written. */
  close(): void {
    this.closed = true;
    this.all.abort();
  }
}
