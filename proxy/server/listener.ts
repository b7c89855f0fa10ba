/**
 * The attested listener: TLS with the RA-TLS identity (hot-swapped on rotation, live connections
 * keep theirs), routing (/.well-known/attestation and /healthz are served here and never
 * forwarded; everything else goes upstream), per-request metrics and one log line per request,
 * and a graceful close: stop accepting, let in-flight exchanges finish within the drain bound,
 * then cut what is left and end stdio children.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { AttestationProvider } from "../attest/provider.js";
import { Identity } from "../attest/identity.js";
import type { Config } from "../config.js";
import { createForwarder, type Forwarder } from "./forward.js";
import { createHealth, upstreamProbe } from "./health.js";
import { sendJsonRpcError } from "./jsonrpc-error.js";
import { createMetrics, startMetricsServer, type Metrics } from "./metrics.js";
import { createStdioUpstream, type StdioUpstream } from "./stdio.js";
import { ATTESTATION_PATH, createAttestationEndpoint } from "./wellknown.js";

export interface RunningServer {
  server: HttpsServer;
  /** Where it listens (the real port when the config said 0). */
  address: { host: string; port: number };
  identity: Identity;
  metrics: Metrics;
  metricsServer: HttpServer | null;
  /** Graceful: stop accepting, drain within config.shutdown.drainMs, end children. */
  close(): Promise<void>;
}

/** Count quotes and their latency by purpose without the provider knowing about metrics. */
function instrumented(p: AttestationProvider, metrics: Metrics, purpose: string): AttestationProvider {
  return {
    name: p.name,
    dev: p.dev,
    quote: async (rd) => {
      const end = metrics.quoteSeconds.startTimer();
      try {
        return await p.quote(rd);
      } finally {
        end();
        metrics.quotes.inc({ purpose });
      }
    },
  };
}

export async function startServer(config: Config, provider: AttestationProvider, log: Logger): Promise<RunningServer> {
  const metrics = createMetrics();
  const identity = await Identity.start({
    provider: instrumented(provider, metrics, "certificate"),
    keyType: config.certificate.keyType,
    lifetimeMs: config.certificate.lifetimeMs,
  });
  metrics.certificateExpiry.set(identity.current.notAfter.getTime() / 1000);

  const up = config.upstream;
  let forwarder: Forwarder | null = null;
  let stdio: StdioUpstream | null = null;
  if (up.kind === "stdio") {
    stdio = createStdioUpstream({
      command: up.command,
      env: up.env,
      ...(up.cwd ? { cwd: up.cwd } : {}),
      maxSessions: up.maxSessions,
      sessionIdleMs: up.sessionIdleMs,
      bodyLimit: up.bodyLimit,
      log: log.child({ component: "stdio" }),
      hooks: metrics.hooks,
    });
  } else {
    forwarder = createForwarder({
      target: up.kind === "http" ? { kind: "http", host: up.host, port: up.port } : { kind: "unix", path: up.path },
      hostHeader: up.hostHeader,
      bodyLimit: up.bodyLimit,
      headersTimeoutMs: up.headersTimeoutMs,
      idleTimeoutMs: up.idleTimeoutMs,
      log: log.child({ component: "forward" }),
      hooks: metrics.hooks,
    });
  }

  const attestation = createAttestationEndpoint({
    provider: instrumented(provider, metrics, "nonce"),
    quotesPerMinute: config.attestationEndpoint.quotesPerMinute,
    log,
  });
  const health = createHealth(identity, upstreamProbe(up));

  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === ATTESTATION_PATH) return attestation(req, res);
    if (path === "/healthz") return health(req, res);
    if (forwarder) return forwarder.handle(req, res);
    if (!stdio!.handle(req, res)) sendJsonRpcError(res, 404, `no MCP endpoint at ${path}: use /mcp (Streamable HTTP) or /sse (legacy)`);
  };

  const server = createHttpsServer(
    {
      ...identity.secureContextOptions(),
      minVersion: config.tls.minVersion,
      // Streams (SSE) may live for hours: no total-request cap; idle limits are the upstream's.
      requestTimeout: 0,
      headersTimeout: 30_000,
      keepAliveTimeout: 5_000,
    },
    (req, res) => {
      const t0 = performance.now();
      const method = req.method ?? "?";
      // Time to response headers (for SSE the stream's life would say nothing): Node sends
      // implicit headers through writeHead too, so this sees every response once.
      const writeHead = res.writeHead;
      res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
        res.writeHead = writeHead;
        metrics.duration.observe({ method }, (performance.now() - t0) / 1000);
        return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
      } as typeof res.writeHead;
      res.once("close", () => {
        metrics.requests.inc({ method, status: String(res.statusCode) });
        // No bodies, no query strings (nonces), no headers: method, path, status and time.
        log.info({ method, path: (req.url ?? "/").split("?", 1)[0], status: res.statusCode, ms: Math.round(performance.now() - t0) }, "request");
      });
      route(req, res);
    },
  );
  identity.on("rotated", (id) => {
    server.setSecureContext({ ...identity.secureContextOptions(), minVersion: config.tls.minVersion });
    metrics.rotations.inc({ result: "ok" });
    metrics.certificateExpiry.set(id.notAfter.getTime() / 1000);
    log.info({ sha256: id.fingerprint, notAfter: id.notAfter.toISOString() }, "certificate rotated");
  });
  identity.on("rotation-failed", (err, current) => {
    metrics.rotations.inc({ result: "failed" });
    log.error({ err: err.message, keepingUntil: current.notAfter.toISOString() }, "certificate rotation failed; keeping the current certificate");
  });
  identity.on("expired", () => log.error("the served certificate has expired and could not be renewed"));

  server.on("secureConnection", (socket: TLSSocket) => {
    metrics.handshakes.inc({ result: "ok" });
    metrics.connections.inc();
    socket.once("close", () => metrics.connections.dec());
  });
  server.on("tlsClientError", (err: Error) => {
    metrics.handshakes.inc({ result: "failed" });
    log.debug({ err: err.message }, "TLS handshake failed");
  });
  server.on("upgrade", (req, socket, head) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (forwarder && path !== ATTESTATION_PATH && path !== "/healthz") forwarder.upgrade(req, socket, head);
    else socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const metricsServer = config.metrics.listen ? await startMetricsServer(metrics, config.metrics.listen.host, config.metrics.listen.port) : null;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      identity.stop();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const drained = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), config.shutdown.drainMs).unref())]);
      if (!drained) {
        log.warn({ drainMs: config.shutdown.drainMs }, "drain bound reached: closing the remaining connections");
        server.closeAllConnections();
      }
      forwarder?.close();
      await stdio?.close();
      await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
      await closed;
    })());

  return { server, address: { host: addr.address, port: addr.port }, identity, metrics, metricsServer, close };
}
