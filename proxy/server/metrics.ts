/**
 * Metrics (prom-client, names attestable_mcp_*) and their own listener, default 127.0.0.1:9464,
 * so that scraping never shares the attested port. Incrementing is cheap and synchronous; the
 * registry is only serialised when /metrics is scraped.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
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
  hooks: ProxyHooks;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "attestable_mcp_process_" });
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
    certificateExpiry: new Gauge({ name: "attestable_mcp_certificate_expiry_timestamp_seconds", help: "notAfter of the served certificate", registers: [registry] }),
    rotations: new Counter({ name: "attestable_mcp_certificate_rotations_total", help: "Certificate re-mints by result", labelNames: ["result"] as const, registers: [registry] }),
  };
  const hooks: ProxyHooks = {
    upstreamError: (kind) => m.upstreamErrors.inc({ kind }),
    streamOpened: (kind) => m.streams.inc({ kind }),
    streamClosed: (kind) => m.streams.dec({ kind }),
  };
  return { ...m, hooks };
}

export function startMetricsServer(metrics: Metrics, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && (req.url === "/metrics" || req.url?.startsWith("/metrics?"))) {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "Content-Type": metrics.registry.contentType });
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
