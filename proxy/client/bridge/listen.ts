/**
 * `bridge --listen`: plain Streamable HTTP on loopback, forwarded request by request to the
 * remote origin through the attested agent (every new connection verified before undici gets
 * it): a byte relay, whatever MCP revision the client speaks. Bodies stream both ways; an event
 * stream's head goes out at once, so SSE events arrive as the remote writes them, and any other
 * answer leaves as it came (an empty 202 as one piece, so the client can reuse its connection at
 * once). The bridge sets no deadline of its own on an answer: a 2026-07-28 server sends its head
 * with the result. A client that leaves aborts its upstream request. A rejection answers the
 * requests in flight with 502 naming the check, and ends the bridge with exit 1.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Dispatcher } from "undici";
import { connectionTokens, connectionTokensOf, isHopByHop } from "../../core/http.js";
import { sendJsonRpcError } from "../../core/jsonrpc.js";
import { bounded, checkRemote, describeAccepted, describeRejection, errorText, onSignals, verdictWatcher, type BridgeCommon } from "./stdio.js";
import { isLoopback } from "../../core/schema.js";
import { createAttestedAgent, rejectionOf, type ConnectionVerdict } from "../connector.js";

export interface HttpBridgeOptions extends BridgeCommon {
  listen: { host: string; port: number };
  signals?: boolean;
}

export interface HttpBridge {
  /** Where it listens (the real port when asked for 0). */
  address: { host: string; port: number };
  /** The exit code, once the bridge has ended. */
  done: Promise<number>;
  close(): Promise<number>;
}

/** undici sets these itself (and refuses `expect`). */
const REQUEST_DROP = new Set(["host", "expect"]);
const CLOSE_BOUND_MS = 3000;

function requestHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = connectionTokensOf(h);
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || isHopByHop(k, named) || REQUEST_DROP.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** The remote's head for the client, end-to-end headers only (raw pairs), and whether it opens an event stream. */
function responseHead(raw: Buffer[]): { headers: string[]; stream: boolean } {
  const pairs = raw.map((b) => b.toString("latin1"));
  const named = connectionTokens(pairs);
  const headers: string[] = [];
  let stream = false;
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const lower = pairs[i]!.toLowerCase();
    if (isHopByHop(lower, named)) continue;
    if (lower === "content-type" && pairs[i + 1]!.trimStart().toLowerCase().startsWith("text/event-stream")) stream = true;
    headers.push(pairs[i]!, pairs[i + 1]!);
  }
  return { headers, stream };
}

/**
 * undici's handler for one forwarded request: the answer streamed to the client with
 * backpressure. `sent` runs once the request is on the wire, or once it never will be.
 */
class Relay implements Dispatcher.DispatchHandler {
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #onDrain: (() => void) | undefined;
  responding = false;
  aborted = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly sent: () => void,
    private readonly failed: (err: Error) => void,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.aborted) abort();
  }

  /** undici calls it (outside its typed interface) once the request's last byte is written. */
  onRequestSent(): void {
    this.sent();
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    // 1xx: the final answer follows on the same exchange.
    if (status < 200) return true;
    if (this.aborted || this.res.destroyed) return false;
    this.responding = true;
    this.#resume = resume;
    const { headers, stream } = responseHead(raw);
    try {
      this.res.writeHead(status, headers);
    } catch (e) {
      this.responding = false;
      this.abort();
      this.failed(e as Error);
      return false;
    }
    // An event stream's head now, not with its first event: the background GET stream may stay silent.
    if (stream) this.res.flushHeaders();
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.destroyed) return false;
    if (this.res.write(chunk)) return true;
    this.res.once("drain", (this.#onDrain ??= () => this.#resume?.()));
    return false;
  }

  onComplete(): void {
    this.res.end();
  }

  onError(err: Error): void {
    this.sent();
    if (!this.aborted) this.failed(err);
  }

  /** Ends the upstream exchange (the client left, or the bridge is closing). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.sent();
    this.#abort?.();
  }
}

/**
 * A page in a browser can reach loopback too (DNS rebinding, or a plain cross-origin fetch): only
 * loopback Host names and, when a browser sends one, loopback Origins are served. `Origin: null`
 * is foreign: sandboxed frames, `data:` and `file:` pages send it, and any page can make one.
 */
function refusedOrigin(req: IncomingMessage): string | null {
  const host = req.headers.host ?? "";
  const hostname = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":", 1)[0]!;
  if (!isLoopback(hostname)) return `Host "${host}" is not a loopback name`;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    try {
      if (isLoopback(new URL(origin).hostname)) return null;
    } catch {
      /* refused below */
    }
    return `Origin "${origin}" is not a loopback origin`;
  }
  return null;
}

interface InFlight {
  res: ServerResponse;
  relay: Relay;
}

export async function startHttpBridge(o: HttpBridgeOptions): Promise<HttpBridge> {
  const first = await checkRemote(o);
  if (!first.ok) {
    o.log(`the remote failed attestation, nothing was forwarded: ${describeRejection(first)}`);
    return { address: { host: o.listen.host, port: 0 }, done: Promise.resolve(1), close: async () => 1 };
  }
  o.log(`remote verified: ${describeAccepted(first)}`);

  let state: "running" | "closing" = "running";
  let failure: string | null = null;
  const inFlight = new Set<InFlight>();
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  let offSignals = (): void => {};

  const reject = (v: ConnectionVerdict): void => {
    if (state !== "running") return;
    failure = describeRejection(v);
    o.log(`the remote failed attestation, closing the bridge: ${failure}`);
    for (const f of inFlight) {
      f.relay.abort();
      sendJsonRpcError(f.res, 502, `attestable-mcp bridge: the remote failed attestation (${failure})`);
    }
    void shutdown(1);
  };

  const agent: Dispatcher = createAttestedAgent({ policy: o.policy, onVerdict: verdictWatcher(o.log, first, reject), ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}) });
  const origin = o.remote.origin;

  /**
   * Per MCP session, its GET stream while that is not yet written to the remote: the session's
   * next requests wait for it. undici writes on a kept-alive connection only an event-loop turn or
   * two after its last answer (it first makes sure the server did not close it), and sends other
   * requests meanwhile on other connections, new ones included; a 1.x client's GET, sent on the
   * connection that had just carried `notifications/initialized`, then often reached the remote
   * after the tool call the client sent next. A 2025 server that sends its requests to the client
   * (sampling, elicitation) on the GET stream drops them while that stream does not exist, and
   * the call waits forever.
   */
  const getsUnsent = new Map<string, Promise<void>>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const session = req.headers["mcp-session-id"];
    const sid = typeof session === "string" ? session : undefined;
    for (let before = sid && getsUnsent.get(sid); before; before = sid && getsUnsent.get(sid)) await before;
    if (res.destroyed) {
      req.resume();
      return;
    }
    if (state !== "running") {
      req.resume();
      return sendJsonRpcError(res, failure ? 502 : 503, failure ? `attestable-mcp bridge: the remote failed attestation (${failure})` : "attestable-mcp bridge: closing");
    }
    const refused = refusedOrigin(req);
    if (refused) {
      req.resume();
      return sendJsonRpcError(res, 403, `attestable-mcp bridge: ${refused}`);
    }
    const method = (req.method ?? "GET").toUpperCase();
    let sent = (): void => {};
    if (sid && method === "GET") {
      const written = new Promise<void>((r) => (sent = r));
      getsUnsent.set(sid, written);
      void written.then(() => {
        if (getsUnsent.get(sid) === written) getsUnsent.delete(sid);
      });
    }
    const path = (req.url ?? "/").split("?", 1)[0];
    const relay = new Relay(res, sent, (e) => {
      const r = rejectionOf(e);
      if (r) return reject(r.verdict);
      if (relay.responding) {
        // After the head, a lost remote must look like an abort to the client, never a clean end.
        res.destroy();
        return;
      }
      o.log(`${method} ${path}: the remote did not answer: ${errorText(e)}`);
      sendJsonRpcError(res, 502, `attestable-mcp bridge: the remote did not answer: ${errorText(e)}`);
    });
    const f: InFlight = { res, relay };
    inFlight.add(f);
    res.once("close", () => {
      inFlight.delete(f);
      // The client left before the end (or the stream was cut): stop the upstream exchange too.
      if (!res.writableFinished) relay.abort();
    });
    const hasBody = method !== "GET" && method !== "HEAD" && (req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0);
    if (!hasBody) req.resume();
    try {
      agent.dispatch(
        {
          origin,
          path: req.url ?? "/",
          method: method as Dispatcher.HttpMethod,
          // --bearer-file replaces the local client's Authorization; without it, the client's passes through.
          headers: o.bearer === undefined ? requestHeaders(req.headers) : { ...requestHeaders(req.headers), authorization: `Bearer ${o.bearer()}` },
          body: hasBody ? req : null,
          // No deadline of the bridge's own: a 2026-07-28 answer's head comes with its result, and an
          // MCP stream may be silent for long; either side ends it, and the remote bounds idleness.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        relay,
      );
    } catch (e) {
      relay.onError(e as Error);
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  // Streams live as long as the MCP session wants them to.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.address.includes(":") ? `[${addr.address}]` : addr.address;
  o.log(`listening on http://${shown}:${addr.port} (Streamable HTTP at http://${shown}:${addr.port}${o.remote.pathname}, forwarded to ${o.remote.origin})`);

  const shutdown = async (code: number): Promise<void> => {
    if (state !== "running") return;
    state = "closing";
    offSignals();
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    // Let the answers already written (the 502s) reach their clients before cutting the rest.
    const answered = [...inFlight].map((f) => new Promise<void>((r) => (f.res.writableFinished || f.res.destroyed ? r() : f.res.once("close", () => r()))));
    if (code !== 0) await bounded(Promise.all(answered), 1000);
    for (const f of inFlight) f.relay.abort();
    server.closeAllConnections();
    await bounded(closed, CLOSE_BOUND_MS);
    await bounded(
      agent.destroy().catch(() => {}),
      CLOSE_BOUND_MS,
    );
    finish(code);
  };
  if (o.signals) {
    offSignals = onSignals((s) => {
      o.log(`${s}: closing`);
      void shutdown(0);
    });
  }

  return {
    address: { host: addr.address, port: addr.port },
    done,
    close: async () => {
      await shutdown(0);
      return done;
    },
  };
}
