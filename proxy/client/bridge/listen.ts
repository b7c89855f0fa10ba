/**
 * `bridge --listen`: plain Streamable HTTP on loopback, forwarded request by request to the
 * remote origin through the attested agent (every new connection verified before undici gets
 * it). Bodies stream both ways and response headers go out at once, so SSE events arrive as the
 * remote writes them; a client that leaves aborts its upstream request. A rejection answers the
 * requests in flight with 502 naming the check, and ends the bridge with exit 1.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import { connectionTokensOf, isHopByHop } from "../../core/http.js";
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

function responseHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionTokensOf(h);
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || isHopByHop(k, named)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * A page in a browser can reach loopback too (DNS rebinding, or a plain cross-origin fetch): only
 * loopback Host names and, when a browser sends one, loopback Origins are served.
 */
function refusedOrigin(req: IncomingMessage): string | null {
  const host = req.headers.host ?? "";
  const hostname = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":", 1)[0]!;
  if (!isLoopback(hostname)) return `Host "${host}" is not a loopback name`;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== "null") {
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
  abort: AbortController;
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
      f.abort.abort();
      sendJsonRpcError(f.res, 502, `attestable-mcp bridge: the remote failed attestation (${failure})`);
    }
    void shutdown(1);
  };

  const agent: Dispatcher = createAttestedAgent({ policy: o.policy, onVerdict: verdictWatcher(o.log, first, reject), ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}) });
  const origin = o.remote.origin;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (state !== "running") {
      req.resume();
      return sendJsonRpcError(res, failure ? 502 : 503, failure ? `attestable-mcp bridge: the remote failed attestation (${failure})` : "attestable-mcp bridge: closing");
    }
    const refused = refusedOrigin(req);
    if (refused) {
      req.resume();
      return sendJsonRpcError(res, 403, `attestable-mcp bridge: ${refused}`);
    }
    const f: InFlight = { res, abort: new AbortController() };
    inFlight.add(f);
    res.once("close", () => {
      inFlight.delete(f);
      // The client left before the end (or the stream was cut): stop the upstream exchange too.
      if (!res.writableFinished) f.abort.abort();
    });
    const method = (req.method ?? "GET").toUpperCase();
    const hasBody = method !== "GET" && method !== "HEAD" && (req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0);
    if (!hasBody) req.resume();
    let up: Dispatcher.ResponseData;
    try {
      up = await agent.request({
        origin,
        path: req.url ?? "/",
        method: method as Dispatcher.HttpMethod,
        headers: requestHeaders(req.headers),
        body: hasBody ? req : null,
        signal: f.abort.signal,
        // An MCP stream may be silent for a long time; it ends when either side ends it.
        bodyTimeout: 0,
      });
    } catch (e) {
      const r = rejectionOf(e);
      if (r) return reject(r.verdict);
      if (f.abort.signal.aborted) return;
      o.log(`${method} ${(req.url ?? "/").split("?", 1)[0]}: the remote did not answer: ${errorText(e)}`);
      return sendJsonRpcError(res, 502, `attestable-mcp bridge: the remote did not answer: ${errorText(e)}`);
    }
    if (res.destroyed || state !== "running") {
      up.body.destroy();
      return;
    }
    res.writeHead(up.statusCode, responseHeaders(up.headers));
    // Headers now, not with the first body byte: the background GET stream may stay silent.
    res.flushHeaders();
    try {
      await pipeline(up.body, res);
    } catch (e) {
      const r = rejectionOf(e);
      if (r) reject(r.verdict);
      else if (!res.destroyed) res.destroy();
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
    for (const f of inFlight) f.abort.abort();
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
