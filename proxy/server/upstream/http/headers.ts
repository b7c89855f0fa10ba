/**
 * The forwarder's header rules, each a small named function. Headers stay in the flat
 * `[name, value, name, value, …]` shape of `rawHeaders`, so that duplicates (Set-Cookie) and the
 * sender's spelling of names survive; each direction is one pass over them, whatever the rules.
 * The hop-by-hop rules are the project's (core/http.ts), shared with the bridge.
 */
import http from "node:http";
import type { IncomingMessage } from "node:http";
import { NO_TOKENS, addConnectionTokens, connectionTokens, isHopByHop, isReservedClientHeader } from "../../../core/http.js";

export type Headers = string[];

/** What the request rules need from the forwarder's options, fixed when it is made. */
export interface HeaderRules {
  /** When set, the Host header sent upstream; otherwise the client's Host is passed. */
  hostHeader: string | null | undefined;
  /** Host when the client sent none. */
  defaultHost: string;
  /** The listener's own X-Attested-Client-* headers (mutual attestation result). */
  attestedHeaders: ((req: IncomingMessage) => Record<string, string>) | undefined;
}

/** `X-Forwarded-*` and `Forwarded` are set by the forwarder, never taken from the client. */
export function isForwardingHeader(lower: string): boolean {
  return lower.startsWith("x-forwarded-") || lower === "forwarded";
}

/**
 * The listener adds its own verdict; a client-sent one would be a forgery the upstream trusts,
 * in any spelling (`X_Attested_Client_Verdict` included: core/http.ts).
 */
export function isAttestedClientHeader(lower: string): boolean {
  return isReservedClientHeader(lower);
}

/** The listener's HTTP server already answered 100-continue. */
export function isExpect(lower: string): boolean {
  return lower === "expect";
}

/** The client's address as the upstream is told it (an IPv4-mapped IPv6 address as IPv4). */
export function clientAddress(req: IncomingMessage): string | undefined {
  const a = req.socket?.remoteAddress;
  return a?.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

/** Appends X-Forwarded-For / -Proto / -Host: who asked, over TLS, for which host. */
export function appendForwarded(out: Headers, req: IncomingMessage, clientHost: string | undefined): void {
  const addr = clientAddress(req);
  if (addr) out.push("X-Forwarded-For", addr);
  out.push("X-Forwarded-Proto", "https");
  if (clientHost !== undefined) out.push("X-Forwarded-Host", clientHost);
}

/** Appends the listener's mutual-attestation headers, once the client's own copies are gone. */
export function appendAttested(out: Headers, req: IncomingMessage, attested: HeaderRules["attestedHeaders"]): void {
  const headers = attested?.(req);
  if (headers) for (const [k, v] of Object.entries(headers)) out.push(k, v);
}

/**
 * The headers sent upstream, from the client's raw headers: Host first (the rules' own, the
 * client's, or the target's), then ours, then what passes every rule in the client's order.
 * Ours lead so that no count or size of client headers can push them past an upstream's limit
 * (the listener also caps the count: limits.maxHeaders).
 */
export function requestHeaders(req: IncomingMessage, isUpgrade: boolean, rules: HeaderRules): Headers {
  const raw = req.rawHeaders;
  const named = connectionTokens(raw);
  const client: Headers = [];
  let clientHost: string | undefined;
  let upgrade: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === "host") {
      clientHost ??= value;
      continue;
    }
    if (lower === "upgrade") upgrade ??= value;
    if (isHopByHop(lower, named) || isForwardingHeader(lower) || isAttestedClientHeader(lower) || isExpect(lower)) continue;
    client.push(name, value);
  }
  const out: Headers = ["Host", rules.hostHeader || clientHost || rules.defaultHost];
  appendAttested(out, req, rules.attestedHeaders);
  appendForwarded(out, req, clientHost);
  for (let i = 0; i < client.length; i++) out.push(client[i]!);
  // The client's framing is not ours to pass on (undici re-chunks a body without Content-Length);
  // an upgrade names its protocol again, since Connection and Upgrade are hop-by-hop.
  if (isUpgrade && upgrade !== undefined) out.push("Connection", "Upgrade", "Upgrade", upgrade);
  return out;
}

/** Headers without hop-by-hop ones, except those in `keep` (duplicates and the sender's case are kept). */
export function endToEnd(raw: readonly string[], keep: ReadonlySet<string> = NO_TOKENS, named: ReadonlySet<string> = connectionTokens(raw)): Headers {
  const out: Headers = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (!keep.has(lower) && isHopByHop(lower, named)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/** An upgrade's answer keeps what makes it one. */
export const UPGRADE_KEEP: ReadonlySet<string> = new Set(["connection", "upgrade"]);

/**
 * A response head as undici hands it over (latin1 buffers) made into the forwarded headers.
 * `head.sse` tells whether it announces an event stream, read from the head as sent.
 */
export function responseHeaders(raw: readonly Buffer[], head: { sse: boolean }): Headers {
  let contentType = "";
  let named: Set<string> | undefined;
  const all: Headers = new Array(raw.length);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString("latin1");
    const value = raw[i + 1]!.toString("latin1");
    all[i] = name;
    all[i + 1] = value;
    // Only names of these two lengths are looked at here; endToEnd lowercases the rest once.
    const lower = name.length === 12 || name.length === 10 ? name.toLowerCase() : "";
    if (lower === "content-type") contentType ||= value;
    else if (lower === "connection") named = addConnectionTokens(value, named);
  }
  head.sse = isEventStream(contentType);
  return endToEnd(all, NO_TOKENS, named ?? NO_TOKENS);
}

/** SSE: flushed at once and counted as a stream. */
export function isEventStream(contentType: string): boolean {
  return /^\s*text\/event-stream/i.test(contentType);
}

/** A reason phrase fit to relay (RFC 9112 §4: HTAB, SP, VCHAR), or undefined. */
export function relayableReason(reason: string | undefined): string | undefined {
  return reason && /^[\t\x20-\x7e]*$/.test(reason) ? reason : undefined;
}

/** An HTTP/1.1 response head for a raw socket (the upgrade path writes its own). */
export function responseHead(status: number, reason: string | undefined, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${relayableReason(reason) ?? http.STATUS_CODES[status] ?? ""}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return head + "\r\n";
}
