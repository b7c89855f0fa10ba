/**
 * Which browsers and which names may reach the stdio endpoints. A page in a browser can send
 * requests to any address, and a DNS name it controls can be made to resolve to this proxy (DNS
 * rebinding), so the spec has servers validate `Origin` (present and not allowed → 403), and the
 * `Host` a request names must be one the proxy is known by. A request without `Origin` (any
 * non-browser client) passes that check; a request without `Host` has not come from a browser either.
 *
 * Pure: configuration in, a verdict per request out; routes.ts applies it before anything else.
 */
import { isIP } from "node:net";
import { isLoopback, unbracket } from "../../../core/schema.js";

export interface OriginOptions {
  /** upstream.allowedOrigins: exact origins (`scheme://host[:port]`) a browser page may call from. */
  allowedOrigins: readonly string[];
  /** upstream.publicHosts: the host names (no port) clients reach the proxy by; null: the listen address's own. */
  publicHosts: readonly string[] | null;
  /** The listen address's host (config `listen`). */
  listenHost: string;
}

export interface RequestGuard {
  /** Null when the request may go on; otherwise why it is refused (403), naming the header. */
  check(headers: { host?: string | undefined; origin?: string | undefined }): string | null;
  /** False when no Host is refused: a wildcard listen address and no upstream.publicHosts. */
  readonly hostChecked: boolean;
}

const ORIGIN_SHAPE = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@\s]+$/i;
const HOST_SHAPE = /^(?:\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::\d{0,5})?$/i;
const NAME_SHAPE = /^(?:\[[0-9a-f:.]+\]|[0-9a-f:.]+|[a-z0-9._~-]+)$/i;

/**
 * One spelling per origin: lowercase, the default port dropped (`https://a.example:443` is
 * `https://a.example`). Null when the value is not an origin (a path, credentials, `null`).
 */
export function normalOrigin(value: string): string | null {
  if (!ORIGIN_SHAPE.test(value)) return null;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return null;
  }
  // Non-special schemes (app://, vscode-webview://) have an opaque origin: compared as written.
  return u.origin === "null" ? value.toLowerCase() : u.origin;
}

/** "Example.COM." → "example.com", "[::1]" → "::1"; null when not a host name or address. */
export function normalHost(name: string): string | null {
  if (!NAME_SHAPE.test(name)) return null;
  const h = unbracket(name).toLowerCase().replace(/\.$/, "");
  if (h.includes(":") && isIP(h) !== 6) return null;
  return h;
}

/** The host name of a Host header value ("a.example:8443" → "a.example"); null when malformed. */
function hostOfHeader(value: string): string | null {
  if (!HOST_SHAPE.test(value)) return null;
  const name = value.startsWith("[") ? value.slice(0, value.indexOf("]") + 1) : value.split(":", 1)[0]!;
  return normalHost(name);
}

/** 0.0.0.0 or :: (any spelling): every interface, so no one name of its own. */
export function isWildcard(host: string): boolean {
  const h = unbracket(host);
  if (isIP(h) === 4) return h === "0.0.0.0";
  if (isIP(h) === 6) return unbracket(new URL(`http://[${h}]/`).hostname) === "::";
  return false;
}

export function requestGuard(o: OriginOptions): RequestGuard {
  const origins = new Set<string>();
  for (const entry of o.allowedOrigins) {
    const n = normalOrigin(entry);
    if (n === null) throw new Error(`not an origin (scheme://host[:port]): ${JSON.stringify(entry)}`);
    origins.add(n);
  }
  let hostOk: (host: string) => boolean;
  let hostChecked = true;
  if (o.publicHosts !== null) {
    const names = new Set<string>();
    for (const entry of o.publicHosts) {
      const n = normalHost(entry);
      if (n === null) throw new Error(`not a host name or address (no port): ${JSON.stringify(entry)}`);
      names.add(n);
    }
    hostOk = (h) => names.has(h);
  } else if (isLoopback(o.listenHost)) {
    hostOk = isLoopback;
  } else if (isWildcard(o.listenHost)) {
    hostOk = () => true;
    hostChecked = false;
  } else {
    const own = normalHost(o.listenHost);
    hostOk = (h) => h === own;
  }
  return {
    hostChecked,
    check({ host, origin }) {
      if (host !== undefined && hostChecked) {
        const h = hostOfHeader(host);
        if (h === null || !hostOk(h)) return `Forbidden: Host ${JSON.stringify(host)} is not a name this server is reached by (upstream.publicHosts)`;
      }
      if (origin !== undefined) {
        const n = normalOrigin(origin);
        if (n === null || !origins.has(n)) return `Forbidden: Origin ${JSON.stringify(origin)} is not allowed (upstream.allowedOrigins)`;
      }
      return null;
    },
  };
}
