/**
 * stdio upstreams: serve an MCP server that speaks stdio (a command the proxy spawns) as MCP
 * Streamable HTTP at `/mcp`, and as the legacy HTTP+SSE transport at `GET /sse` +
 * `POST /message?sessionId=…`.
 *
 * Legacy (2025-era) clients get one child process per MCP session; MCP 2026-07-28 clients, which
 * have no session, share a small pool of long-lived children (`modern/`). The proxy is a relay,
 * not an MCP peer: JSON-RPC messages go between the HTTP side and the child's stdio unchanged (no
 * `Server`/`Client` protocol object) apart from the ids the pool rewrites, so methods the proxy
 * does not know pass through as well.
 *
 * The parts: `child` (one process: spawn, stdio framing, stderr to the log, exit, stop),
 * `routing` (which stream a message from the child belongs on), `session` (a child, its HTTP side
 * and its timers), `sessions` (the table and its limits), `body` (the bounded body reader), `web`
 * (Node request and response to and from web-standard ones), `streamable` and `legacy` (the two
 * transports' endpoints), `modern/` (era and header validation, the pool, the answers of modern
 * requests), `routes` (path to endpoint). This file puts them together.
 */
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import { ConfigError } from "../../../core/errors.js";
import { noHooks, type ProxyHooks } from "../../hooks.js";
import type { Upstream } from "../upstream.js";
import { type ChildCommand, childEnv } from "./child.js";
import { legacyEndpoints } from "./legacy.js";
import { modernEndpoint } from "./modern/endpoint.js";
import { ModernPool } from "./modern/pool.js";
import { type OriginOptions, requestGuard } from "./origin.js";
import { refuseUpgrade, routes } from "./routes.js";
import type { Opener } from "./session.js";
import { Sessions } from "./sessions.js";
import { StartHealth } from "./starts.js";
import { clientOfAddress } from "../../shares.js";
import { streamableEndpoint } from "./streamable.js";

export interface StdioOptions {
  /** argv; command[0] is the executable. */
  command: string[];
  /** Added to a minimal environment (PATH, HOME); the proxy's own environment is not passed on. */
  env?: Record<string, string>;
  cwd?: string;
  /** Concurrent sessions (children); default 32; at it the least recently used idle one ends, and with none idle → 503. */
  maxSessions?: number;
  /** One client's share of them (upstream.maxSessionsPerClient); default half; past it its own idle one ends, or 429. */
  maxSessionsPerClient?: number;
  /** A session whose client has not finished `initialize` within this is reclaimed (upstream.initTimeout); default 30 s. */
  initTimeoutMs?: number;
  /** Who a request comes from; default: its address, with no principal (sessions usable by whoever holds the id). */
  clientOf?: (req: IncomingMessage) => Opener;
  /** Long-lived children shared by every MCP 2026-07-28 client (upstream.modernChildren); default 1. */
  modernChildren?: number;
  /** A session without any request, relayed message or request awaiting its answer for this long ends (child killed); default 30 min. */
  sessionIdleMs?: number;
  /**
   * A child that sends nothing (no answer, no progress, no message at all) for this long while a
   * request waits is taken as hung: its session ends, waiting requests are answered with an error
   * and the child is killed; default 5 min (upstream.idleTimeout).
   */
  requestIdleMs?: number;
  /** Request body limit in bytes; default 4 MiB → 413 with a JSON-RPC error body. */
  bodyLimit?: number;
  /** Longest message from a child (upstream.maxMessageSize); default 64 MiB. Past it the request it answers gets a JSON-RPC error. */
  maxMessageSize?: number;
  /** Origin and Host checks (origin.ts); absent: none (an embedder behind its own checks). */
  origins?: OriginOptions;
  log: Logger;
  hooks?: ProxyHooks;
}

/**
 * Serves /mcp, /sse and /message and answers 404 for other paths; refuses Upgrade requests;
 * `close()` ends every session and child (SIGTERM, then SIGKILL after a bound).
 */
export interface StdioUpstream extends Upstream {
  /** Live sessions (each with its child), initialized or not. */
  sessions(): number;
  /** The modern pool: children alive, and log messages dropped for want of one request to tie them to. */
  modern(): { children: number; droppedLogs: number };
  /** Why /healthz should answer 503 (children cannot start, the session pool is full with nothing idle), or null. */
  problem(): Promise<string | null>;
}

const DEFAULT_MAX_SESSIONS = 32;
const DEFAULT_IDLE_MS = 30 * 60_000;
const DEFAULT_REQUEST_IDLE_MS = 5 * 60_000;
const DEFAULT_BODY_LIMIT = 4 * 1024 * 1024;
const DEFAULT_INIT_TIMEOUT_MS = 30_000;

const byAddress = (req: IncomingMessage): Opener => ({ client: clientOfAddress(req.socket.remoteAddress), principal: null });

export function createStdioUpstream(opts: StdioOptions): StdioUpstream {
  const [executable, ...args] = opts.command;
  if (executable === undefined || executable === "") throw new ConfigError("command", "stdio upstream", "must not be empty");
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const hooks = opts.hooks ?? noHooks;
  const log = opts.log;
  const command: ChildCommand = { executable, args, env: childEnv(opts.env), cwd: opts.cwd, ...(opts.maxMessageSize !== undefined && { maxMessageSize: opts.maxMessageSize }) };
  const requestIdleMs = opts.requestIdleMs ?? DEFAULT_REQUEST_IDLE_MS;
  const starts = new StartHealth(command, log);
  const maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
  const limits = { maxSessions, maxPerClient: opts.maxSessionsPerClient ?? Math.max(1, Math.ceil(maxSessions / 2)), initTimeoutMs: opts.initTimeoutMs ?? DEFAULT_INIT_TIMEOUT_MS };
  const sessions = new Sessions(limits, {
    command,
    starts,
    idleMs: opts.sessionIdleMs ?? DEFAULT_IDLE_MS,
    requestIdleMs,
    hooks,
    log,
  });
  const pool = new ModernPool({ size: opts.modernChildren ?? 1, command, requestIdleMs, hooks, log, starts });
  const modern = modernEndpoint({ pool, hooks, log });
  const guard = opts.origins && requestGuard(opts.origins);
  if (guard && !guard.hostChecked) log.warn("stdio upstream: listening on every interface without upstream.publicHosts, so the Host header is not checked");
  const clientOf = opts.clientOf ?? byAddress;
  const legacy = legacyEndpoints({ sessions, clientOf, bodyLimit, hooks, log });
  const handle = routes({ mcp: streamableEndpoint({ sessions, clientOf, modern, bodyLimit, hooks, log }), sse: legacy.sse, message: legacy.message }, log, guard);
  return {
    handle,
    upgrade: refuseUpgrade,
    close: async () => {
      await Promise.all([sessions.close(), pool.close()]);
    },
    sessions: () => sessions.size,
    modern: () => ({ children: pool.children, droppedLogs: pool.droppedLogs }),
    problem: async () => (await starts.problem()) ?? sessions.saturated(),
  };
}
