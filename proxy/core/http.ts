/**
 * Header rules every HTTP relay of the project obeys, the server's forwarder and the client's
 * bridge alike: which headers belong to one connection (hop-by-hop) and so are never passed on,
 * and which carry the proxy's own word about a client and so are never taken from one.
 * Names are compared in lower case.
 */
import { ATTESTED_CLIENT_HEADER_PREFIX, AUTHENTICATED_SUBJECT_HEADER } from "./protocol.js";

const ATTESTED_PREFIX = ATTESTED_CLIENT_HEADER_PREFIX.toLowerCase();
const SUBJECT = AUTHENTICATED_SUBJECT_HEADER.toLowerCase();

/**
 * Whether a client-sent header (its lower-case name) spells one of the proxy's verdict headers.
 * `_` counts as `-`: CGI, WSGI and many frameworks fold both into one variable
 * (HTTP_X_ATTESTED_CLIENT_VERDICT), so an underscore spelling would reach the upstream as ours.
 */
export function isReservedClientHeader(lower: string): boolean {
  const c = lower.charCodeAt(0);
  // Only names that start with x or X can match: most headers are rejected without a copy.
  if (c !== 0x78) return false;
  const name = lower.includes("_") ? lower.replace(/_/g, "-") : lower;
  return name.startsWith(ATTESTED_PREFIX) || name === SUBJECT;
}

/** RFC 9110 §7.6.1 plus the usual non-standard ones; a relay keeps `upgrade` on upgrade requests only. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate"]);

/** No header named by a Connection header: shared, so that the common case allocates nothing. */
export const NO_TOKENS: ReadonlySet<string> = new Set();

/** Adds the names one Connection header value lists (lower case) to `into`, created at the first one. */
export function addConnectionTokens(value: string, into: Set<string> | undefined): Set<string> | undefined {
  for (const t of value.split(",")) {
    const v = t.trim().toLowerCase();
    if (v) (into ??= new Set()).add(v);
  }
  return into;
}

/** The names the Connection headers of raw `[name, value, …]` pairs list: hop-by-hop for this message. */
export function connectionTokens(raw: readonly string[]): ReadonlySet<string> {
  let tokens: Set<string> | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    // Only a name of this length can be "connection": most names are never lowercased here.
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === "connection") tokens = addConnectionTokens(raw[i + 1]!, tokens);
  }
  return tokens ?? NO_TOKENS;
}

/** The same for parsed headers (`IncomingHttpHeaders`, undici's header object): lower-case keys. */
export function connectionTokensOf(headers: { connection?: string | string[] | undefined }): ReadonlySet<string> {
  const v = headers.connection;
  if (v === undefined) return NO_TOKENS;
  return addConnectionTokens(Array.isArray(v) ? v.join(",") : v, undefined) ?? NO_TOKENS;
}

/** Whether a header (its lower-case name) belongs to this connection only: never relayed. */
export function isHopByHop(lower: string, named: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(lower) || named.has(lower);
}
