/**
 * Metrics (prom-client, names attestable_mcp_*) and their own listener, default 127.0.0.1:9464,
 * so that scraping never shares the attested port. Node's process metrics keep their standard
 * names (process_cpu_seconds_total, nodejs_heap_size_used_bytes, …), which dashboards expect. Incrementing is cheap and synchronous; the
 * registry is only serialised when /metrics is scraped.
 */
import { createServer, ServerResponse, type IncomingMessage, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectProcessMetrics } from "./prom.js";
import type { ProxyHooks } from "./hooks.js";

export interface Metrics {
  registry: Registry;
  requests: Counter<"method" | "status">;
  duration: Histogram<"method">;
  upstreamErrors: Counter<"kind">;
  connections: Gauge;
  streams: Gauge<"kind">;
  handshakes: Counter<"result">;
  quotes: Counter<"purpose">;
  quoteSeconds: Histogram;
  certificateExpiry: Gauge;
  rotations: Counter<"result">;
  clientAttestationFailures: Counter<"check">;
  /** Requests and connections refused by a per-client share ("client") or a global cap ("global"). */
  shareRefusals: Counter<"resource" | "scope">;
  /** stdio sessions evicted (least recently used idle) to make room. */
  sessionEvictions: Counter;
  /** Requests and upgrades refused by caller authentication (auth.mode bearer or oauth), by reason. */
  authFailures: Counter<"reason">;
  /** Where the stdio gauges (sessions, children) read from at scrape time; unset: no stdio upstream. */
  watchStdio(source: () => { sessions: number; modernChildren: number }): void;
  hooks: ProxyHooks;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectProcessMetrics(registry);
  let stdio: (() => { sessions: number; modernChildren: number }) | undefined;
  const m = {
    registry,
    requests: new Counter({ name: "attestable_mcp_requests_total", help: "HTTP requests by method and status", labelNames: ["method", "status"] as const, registers: [registry] }),
    duration: new Histogram({
      name: "attestable_mcp_request_duration_seconds",
      help: "Time to response headers",
      labelNames: ["method"] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    upstreamErrors: new Counter({ name: "attestable_mcp_upstream_errors_total", help: "Upstream failures by kind", labelNames: ["kind"] as const, registers: [registry] }),
    connections: new Gauge({ name: "attestable_mcp_open_connections", help: "Open TLS connections", registers: [registry] }),
    streams: new Gauge({ name: "attestable_mcp_open_streams", help: "Open SSE and WebSocket streams", labelNames: ["kind"] as const, registers: [registry] }),
    handshakes: new Counter({ name: "attestable_mcp_tls_handshakes_total", help: "TLS handshakes by result", labelNames: ["result"] as const, registers: [registry] }),
    quotes: new Counter({ name: "attestable_mcp_quotes_total", help: "Quotes produced, by purpose", labelNames: ["purpose"] as const, registers: [registry] }),
    quoteSeconds: new Histogram({ name: "attestable_mcp_quote_duration_seconds", help: "Quote generation latency", buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2], registers: [registry] }),
    // With workers each process serves its own certificate; aggregated, the soonest expiry is the one to alert on.
    certificateExpiry: new Gauge({ name: "attestable_mcp_certificate_expiry_timestamp_seconds", help: "notAfter of the served certificate", aggregator: "min", registers: [registry] }),
    rotations: new Counter({ name: "attestable_mcp_certificate_rotations_total", help: "Certificate re-mints by result", labelNames: ["result"] as const, registers: [registry] }),
    clientAttestationFailures: new Counter({
      name: "attestable_mcp_client_attestation_failures_total",
      help: "Client connections refused or admitted unattested, by failed check (absent: no certificate, required mode)",
      labelNames: ["check"] as const,
      registers: [registry],
    }),
    shareRefusals: new Counter({
      name: "attestable_mcp_share_refusals_total",
      help: "Refused past a per-client share (scope client) or a global cap (scope global), by resource (evidence, connection, session)",
      labelNames: ["resource", "scope"] as const,
      registers: [registry],
    }),
    sessionEvictions: new Counter({ name: "attestable_mcp_stdio_session_evictions_total", help: "stdio sessions ended to make room (least recently used idle)", registers: [registry] }),
    authFailures: new Counter({
      name: "attestable_mcp_auth_failures_total",
      help: "Requests refused by caller authentication, by reason (missing, invalid, insufficient_scope, keys_unavailable)",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
  };
  // Read when scraped: the tables are the truth, counting along them could drift.
  new Gauge({
    name: "attestable_mcp_stdio_sessions",
    help: "Live stdio sessions (legacy, one child each), initialized or not",
    registers: [registry],
    collect() {
      if (stdio) this.set(stdio().sessions);
    },
  });
  new Gauge({
    name: "attestable_mcp_stdio_children",
    help: "Live stdio children by kind (session: one per legacy session; modern: the shared pool)",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      if (!stdio) return;
      const now = stdio();
      this.set({ kind: "session" }, now.sessions);
      this.set({ kind: "modern" }, now.modernChildren);
    },
  });
  const hooks: ProxyHooks = {
    upstreamError: (kind) => m.upstreamErrors.inc({ kind }),
    streamOpened: (kind) => m.streams.inc({ kind }),
    streamClosed: (kind) => m.streams.dec({ kind }),
    sessionEvicted: () => m.sessionEvictions.inc(),
    sessionRefused: (scope) => m.shareRefusals.inc({ resource: "session", scope }),
  };
  return { ...m, hooks, watchStdio: (source) => void (stdio = source) };
}

type Observe = (seconds: number) => void;
type Inc = () => void;

/**
 * Per-request accounting for the listener: time to response headers by method, and requests by
 * method and status on close (then `closed`, the access log, with the time since arrival).
 *
 * The time to headers is taken in a ServerResponse subclass handed to the server, not by
 * patching `res.writeHead` on each response: an own property added per instance gives every
 * response a different hidden class from the one Node's http internals were optimised for, and
 * their property loads go megamorphic. One close listener, shared by every response (it reads
 * the response as `this`), does the counting and the logging: no closure or wrapper per request.
 * prom-client hashes the label object on every inc/observe; the bound children are kept per
 * label value (methods and status codes are a small closed set: Node's parser accepts only
 * known methods).
 */
export function requestAccounting(
  metrics: Metrics,
  closed: (req: IncomingMessage, res: ServerResponse, ms: number) => void = () => {},
): {
  ServerResponse: typeof ServerResponse<IncomingMessage>;
  onRequest(req: IncomingMessage, res: ServerResponse): void;
} {
  const durations = new Map<string, Observe>();
  const counts = new Map<string, Inc>();
  const durationOf = (method: string): Observe => {
    let f = durations.get(method);
    if (!f) {
      const child = metrics.duration.labels(method);
      durations.set(method, (f = (seconds) => child.observe(seconds)));
    }
    return f;
  };
  const countOf = (method: string, status: number): Inc => {
    const key = `${method} ${status}`;
    let f = counts.get(key);
    if (!f) {
      const child = metrics.requests.labels(method, String(status));
      counts.set(key, (f = () => child.inc()));
    }
    return f;
  };

  class TimedResponse extends ServerResponse<IncomingMessage> {
    /** performance.now() when the request arrived. */
    readonly started = performance.now();
    headed = false;
    // Node sends implicit headers through writeHead too, so this sees every response once.
    override writeHead(statusCode: number, ...rest: unknown[]): this {
      if (!this.headed) {
        this.headed = true;
        durationOf(this.req.method ?? "?")((performance.now() - this.started) / 1000);
      }
      return (super.writeHead as (code: number, ...a: unknown[]) => this)(statusCode, ...rest);
    }
  }

  function onClose(this: TimedResponse): void {
    const req = this.req;
    countOf(req.method ?? "?", this.statusCode)();
    closed(req, this, performance.now() - this.started);
  }

  const onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    // 'close' is emitted once per response.
    res.on("close", onClose);
  };
  return { ServerResponse: TimedResponse as typeof ServerResponse<IncomingMessage>, onRequest };
}

export function startMetricsServer(metrics: Metrics, host: string, port: number): Promise<Server> {
  return startMetricsEndpoint({ text: () => metrics.registry.metrics(), contentType: metrics.registry.contentType }, host, port);
}

/** The metrics listener over any source of exposition text (one registry, or the cluster's aggregate). */
export function startMetricsEndpoint(source: { text(): Promise<string>; contentType: string }, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && (req.url === "/metrics" || req.url?.startsWith("/metrics?"))) {
      source.text().then(
        (text) => {
          res.writeHead(200, { "Content-Type": source.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found: metrics are at /metrics\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
