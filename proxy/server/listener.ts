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
import { loadClientPolicy, type Config } from "./config.js";
import { createForwarder } from "./upstream/http/forward.js";
import { createHealth, upstreamProbe } from "./health.js";
import { createMetrics, requestAccounting, startMetricsServer, type Metrics } from "./metrics.js";
import { accessLog, pathOf } from "./access-log.js";
import type { Upstream } from "./upstream/upstream.js";
import { ATTESTATION_PATH, createAttestationEndpoint } from "./wellknown.js";
import { admitConnections, answerUpgrade, refuseRequest, refuseUpgrade, requestHeadProblem } from "./admission.js";
import { ConnectionShares, clientOfAddress } from "./shares.js";
import { callerOf, principalOf } from "./principal.js";
import { createBearerGuard } from "./auth/bearer.js";
import { subjectOf, type Guard } from "./auth/guard.js";
import { createResourceMetadata } from "./auth/resource-metadata.js";
import { AUTHENTICATED_SUBJECT_HEADER } from "../core/protocol.js";

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
  const ca = config.clientAttestation;
  const gate =
    ca.mode === "off"
      ? null
      : // Loaded only here: client appraisal brings the DCAP verifier and the collateral
        // fetchers, about 10 MB resident that a server without client attestation never uses.
        (await import("./client-attestation.js")).createClientGate({
          mode: ca.mode,
          // loadConfig has loaded it; a Config built by other means is vetted the same way here.
          policy: ca.policy ?? (await loadClientPolicy(ca.policyFile ?? "", ca.policySource)),
          log: log.child({ component: "client-attestation" }),
          onFailure: (check) => metrics.clientAttestationFailures.inc({ check }),
        });

  // Who may call: checked after the client's attestation verdict, before anything is forwarded.
  const auth = config.auth;
  const authLog = log.child({ component: "auth" });
  const authFailed = (reason: string): void => metrics.authFailures.inc({ reason });
  let guard: Guard | null = null;
  if (auth.mode === "bearer") {
    guard = createBearerGuard(auth.keys, authLog, authFailed);
    log.info({ keys: auth.keys.length, keysFile: auth.keysFile }, "bearer keys loaded");
  } else if (auth.mode === "oauth") {
    // Loaded only here: the JWT library is resident memory every other auth mode would carry.
    const { createOAuthGuard } = await import("./auth/oauth.js");
    guard = createOAuthGuard(auth, authLog, authFailed);
    log.info({ issuer: auth.issuer, audience: auth.audience, scopes: auth.scopes }, "OAuth access tokens required");
  }
  const resourceMetadata = auth.mode === "oauth" ? createResourceMetadata(auth) : null;

  const identity = await Identity.start({
    provider: instrumented(provider, metrics, "certificate"),
    keyType: config.certificate.keyType,
    lifetimeMs: config.certificate.lifetimeMs,
  });
  metrics.certificateExpiry.set(identity.current.notAfter.getTime() / 1000);

  const up = config.upstream;
  let upstream: Upstream;
  let stdioProblem: (() => Promise<string | null>) | undefined;
  if (up.kind === "stdio") {
    // Loaded only here: the MCP SDK behind it is about 20 MB of resident heap an HTTP upstream never uses.
    const { createStdioUpstream } = await import("./upstream/stdio/relay.js");
    const stdio = createStdioUpstream({
      command: up.command,
      env: up.env,
      ...(up.cwd ? { cwd: up.cwd } : {}),
      maxSessions: up.maxSessions,
      maxSessionsPerClient: up.maxSessionsPerClient,
      initTimeoutMs: up.initTimeoutMs,
      // A session opened by a bearer key or a trusted client certificate is that caller's alone.
      clientOf: (req) => {
        const principal = callerOf(req, gate);
        return { principal, client: principal ?? clientOfAddress(req.socket.remoteAddress) };
      },
      modernChildren: up.modernChildren,
      sessionIdleMs: up.sessionIdleMs,
      requestIdleMs: up.idleTimeoutMs,
      bodyLimit: up.bodyLimit,
      maxMessageSize: up.maxMessageSize,
      origins: { allowedOrigins: up.allowedOrigins, publicHosts: up.publicHosts, listenHost: config.listen.host },
      log: log.child({ component: "stdio" }),
      hooks: metrics.hooks,
    });
    metrics.watchStdio(() => ({ sessions: stdio.sessions(), modernChildren: stdio.modern().children }));
    stdioProblem = () => stdio.problem();
    upstream = stdio;
  } else {
    upstream = createForwarder({
      target: up.kind === "http" ? { kind: "http", host: up.host, port: up.port } : { kind: "unix", path: up.path },
      hostHeader: up.hostHeader,
      bodyLimit: up.bodyLimit,
      headersTimeoutMs: up.headersTimeoutMs,
      idleTimeoutMs: up.idleTimeoutMs,
      log: log.child({ component: "forward" }),
      hooks: metrics.hooks,
      ...(gate || guard
        ? {
            attestedHeaders: (req: IncomingMessage) => {
              const subject = subjectOf(req);
              return { ...gate?.headers(req), ...(subject === null ? {} : { [AUTHENTICATED_SUBJECT_HEADER]: subject }) };
            },
          }
        : {}),
    });
  }

  const attestation = createAttestationEndpoint({
    provider: instrumented(provider, metrics, "nonce"),
    quotesPerMinute: config.attestationEndpoint.quotesPerMinute,
    quotesPerClientPerMinute: config.attestationEndpoint.quotesPerClientPerMinute,
    // Under mutual attestation a trusted client is its certificate, wherever it connects from.
    clientOf: (req) => (gate ? principalOf(req, gate) : null) ?? clientOfAddress(req.socket.remoteAddress),
    onRefused: (scope) => metrics.shareRefusals.inc({ resource: "evidence", scope }),
    log,
  });
  const health = createHealth(identity, upstreamProbe(up, stdioProblem));

  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const path = pathOf(req.url);
    if (path === ATTESTATION_PATH) return attestation(req, res);
    if (path === "/healthz") return health(req, res);
    if (resourceMetadata?.serves(path)) return resourceMetadata.handle(req, res);
    if (guard) guard.admit(req, res, () => upstream.handle(req, res));
    else upstream.handle(req, res);
  };

  const accounting = requestAccounting(metrics, accessLog(log, subjectOf));
  const server = createHttpsServer(
    {
      ...identity.secureContextOptions(),
      ...gate?.tlsOptions,
      minVersion: config.tls.minVersion,
      // Streams (SSE) may live for hours: no total-request cap; idle limits are the upstream's.
      requestTimeout: 0,
      // Slow and hostile clients: a handshake or a request head trickled in holds a socket only this long.
      handshakeTimeout: config.limits.handshakeTimeoutMs,
      headersTimeout: config.limits.headersTimeoutMs,
      maxHeaderSize: config.limits.maxHeaderSize,
      // Node checks header deadlines on this interval (default 30 s), which would stretch a short bound.
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, config.limits.headersTimeoutMs / 4)),
      keepAliveTimeout: 5_000,
      // Time to response headers (for SSE the stream's life would say nothing) is taken here.
      ServerResponse: accounting.ServerResponse,
    },
    (req, res) => {
      accounting.onRequest(req, res);
      const problem = requestHeadProblem(req, config.limits.maxHeaders);
      if (problem) return refuseRequest(res, problem);
      // Nothing is routed, not even /.well-known, before the client's verdict is in.
      if (gate) gate.hold(req, res, () => route(req, res));
      else route(req, res);
    },
  );
  identity.on("rotated", (id) => {
    server.setSecureContext({ ...identity.secureContextOptions(), ...gate?.tlsOptions, minVersion: config.tls.minVersion });
    metrics.rotations.inc({ result: "ok" });
    metrics.certificateExpiry.set(id.notAfter.getTime() / 1000);
    log.info({ sha256: id.fingerprint, notAfter: id.notAfter.toISOString() }, "certificate rotated");
  });
  identity.on("rotation-failed", (err, current) => {
    metrics.rotations.inc({ result: "failed" });
    log.error({ err: err.message, keepingUntil: current.notAfter.toISOString() }, "certificate rotation failed; keeping the current certificate");
  });
  identity.on("expired", () => log.error("the served certificate has expired and could not be renewed"));

  // First, so the appraisal is under way before HTTP parsing is attached to the socket.
  if (gate) server.prependListener("secureConnection", (socket: TLSSocket) => gate.connection(socket));
  server.on("secureConnection", (socket: TLSSocket) => {
    metrics.handshakes.inc({ result: "ok" });
    metrics.connections.inc();
    socket.once("close", () => metrics.connections.dec());
  });
  server.on("tlsClientError", (err: Error) => {
    metrics.handshakes.inc({ result: "failed" });
    log.debug({ err: err.message }, "TLS handshake failed");
  });
  // One line more than allowed is kept, so that requestHeadProblem can tell "too many" (Node
  // would otherwise drop the extra lines silently, at 2000 by default).
  server.maxHeadersCount = config.limits.maxHeaders + 1;
  const connectionShares = new ConnectionShares(config.limits.maxConnections, config.limits.maxConnectionsPerClient);
  admitConnections(server, connectionShares, (scope) => metrics.shareRefusals.inc({ resource: "connection", scope }));
  server.on("upgrade", (req, socket, head) => {
    const problem = requestHeadProblem(req, config.limits.maxHeaders);
    if (problem) return refuseUpgrade(socket, problem);
    const path = (req.url ?? "/").split("?", 1)[0];
    const go = (): void => {
      if (path !== ATTESTATION_PATH && path !== "/healthz" && !resourceMetadata?.serves(path)) {
        if (guard) guard.admitUpgrade(req, socket, () => upstream.upgrade(req, socket, head));
        else upstream.upgrade(req, socket, head);
      } else answerUpgrade(socket, 404, null);
    };
    if (gate) gate.holdUpgrade(req, socket, go);
    else go();
  });

  let metricsServer: HttpServer | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.listen.port, config.listen.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    if (config.metrics.listen) metricsServer = await startMetricsServer(metrics, config.metrics.listen.host, config.metrics.listen.port);
  } catch (e) {
    // Serving without a listener the config asked for (metrics included) would be silent
    // half-health: every listener starts, or nothing stays open and the caller sees why.
    identity.stop();
    if (server.listening) server.close();
    server.closeAllConnections();
    await upstream.close();
    throw e;
  }
  const addr = server.address() as AddressInfo;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      identity.stop();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      // A kept-alive connection whose exchange finishes during the drain turns idle and would hold
      // the close (and the exit) until keepAliveTimeout or the bound: close those as they appear.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      sweep.unref();
      const drained = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), config.shutdown.drainMs).unref())]);
      clearInterval(sweep);
      if (!drained) {
        log.warn({ drainMs: config.shutdown.drainMs }, "drain bound reached: closing the remaining connections");
        server.closeAllConnections();
      }
      await upstream.close();
      await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
      await closed;
    })());

  return { server, address: { host: addr.address, port: addr.port }, identity, metrics, metricsServer, close };
}
