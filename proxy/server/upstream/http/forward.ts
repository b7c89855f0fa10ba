/**
 * Streaming HTTP reverse proxy to an HTTP upstream (TCP or UNIX socket): the `Upstream` of the
 * http kinds, assembled from its parts. Requests go upstream through undici's `Client.dispatch`
 * on a pool of connections (pool.ts; its parser and request path cost ~40 % less CPU per request
 * than Node's `http` client, measured by `npm run bench`), one exchange each (exchange.ts);
 * WebSocket tunnels use `node:http` (upgrade.ts); the header rules of both are in headers.ts.
 *
 * Both directions are streamed chunk by chunk with backpressure, nothing is re-encoded, and only a
 * small declared request body is gathered (exchange.ts says why): SSE events reach the client as the upstream writes them (headers flushed at once, Nagle off).
 * Hop-by-hop headers are stripped both ways; `X-Forwarded-*` are set by us, never taken from the
 * client; client-sent `X-Attested-Client-*` are removed before the listener's own are added.
 */
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { noHooks, type ProxyHooks } from "../../hooks.js";
import type { Upstream } from "../upstream.js";
import { exchange, type ExchangeContext } from "./exchange.js";
import { Pool, authorityOf, describeTarget, type UpstreamTarget } from "./pool.js";
import { createTunnels, type UpgradeContext } from "./upgrade.js";

export type { UpstreamTarget } from "./pool.js";

export interface ForwardOptions {
  target: UpstreamTarget;
  /** When set, the Host header sent upstream; otherwise the client's Host is passed. */
  hostHeader?: string | null;
  /** Request body bytes, default 4 MiB: beyond → 413 (JSON-RPC error body), nothing forwarded past the limit. */
  bodyLimit?: number;
  /**
   * When set, the upstream must answer with headers within this after the request was sent → 504.
   * Default none: a 2026-07-28 server sends its head with the result, so a quiet call has no head
   * for as long as it runs; `idleTimeoutMs` still ends an exchange on which nothing moves.
   */
  headersTimeoutMs?: number | null;
  /** No byte either way on an exchange or stream for this long → close it (default 5 min). Never a cap on a stream's life. */
  idleTimeoutMs?: number;
  log: Logger;
  hooks?: ProxyHooks;
  /** Headers the listener adds after stripping client-sent X-Attested-Client-* (mutual attestation result). */
  attestedHeaders?: (req: IncomingMessage) => Record<string, string>;
}

/** `close()` destroys the open exchanges and tunnels and the upstream connections. */
export type Forwarder = Upstream;

export const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;

export function createForwarder(opts: ForwardOptions): Forwarder {
  const { target } = opts;
  const pool = new Pool(target);
  // One object for both parts: `closed` is read by every new exchange and tunnel.
  const ctx: ExchangeContext & UpgradeContext & { closed: boolean } = {
    target,
    pool,
    rules: { hostHeader: opts.hostHeader, defaultHost: authorityOf(target), attestedHeaders: opts.attestedHeaders },
    describe: describeTarget(target),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    headersTimeoutMs: opts.headersTimeoutMs ?? null,
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    log: opts.log,
    hooks: opts.hooks ?? noHooks,
    closed: false,
    open: new Set(),
  };
  const tunnels = createTunnels(ctx);

  return {
    handle: (req, res) => exchange(ctx, req, res),
    upgrade: tunnels.upgrade,
    async close() {
      ctx.closed = true;
      for (const open of [...ctx.open]) open.teardown();
      ctx.open.clear();
      tunnels.close();
      await pool.close();
    },
  };
}
