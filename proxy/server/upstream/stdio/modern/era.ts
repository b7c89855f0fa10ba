/**
 * Which era a POST to /mcp belongs to when it names no live session, and for a modern one
 * (MCP 2026-07-28: stateless, no `initialize`) whether it may reach a child at all.
 *
 * Modern: the `MCP-Protocol-Version` header names a revision of 2026-07-28 or later, or the body
 * carries `_meta["io.modelcontextprotocol/protocolVersion"]`. `initialize` is always the legacy
 * handshake. Everything else is legacy and keeps the answer legacy clients expect.
 *
 * A modern request is then validated as streamable-http.mdx ("Server Validation", "Protocol
 * Version Header", "Standard Request Headers", "Value Encoding") says: a revision the proxy does
 * not know → 400 UnsupportedProtocolVersion (-32022) with the supported list; a header that is
 * missing, malformed or disagrees with the body → 400 HeaderMismatch (-32020) naming the pair.
 * Nothing that fails here is written to a child.
 */
import type { IncomingHttpHeaders } from "node:http";
import {
  FIRST_MODERN_REVISION,
  HEADER_MISMATCH,
  MCP_METHOD_HEADER,
  MCP_NAME_HEADER,
  MCP_PROTOCOL_VERSION_HEADER,
  META_PROTOCOL_VERSION,
  MODERN_REVISIONS,
  UNSUPPORTED_PROTOCOL_VERSION,
} from "../../../../core/protocol.js";
import { decodeHeaderValue, headerValue, type Mismatch } from "./headers.js";

export type Id = string | number;
const INVALID_REQUEST = -32600;
const INVALID_PARAMS = -32602;

export interface ModernMessage {
  jsonrpc: "2.0";
  method: string;
  id?: Id;
  params?: Record<string, unknown>;
}

/** What the client gets instead: an HTTP status and a JSON-RPC error carrying the request's id. */
export interface Rejection {
  status: number;
  code: number;
  message: string;
  data?: unknown;
  id: Id | null;
}

export type Classified = { era: "legacy" } | { era: "modern"; message: ModernMessage; version: string } | { era: "reject"; rejection: Rejection };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isId = (v: unknown): v is Id => typeof v === "string" || (typeof v === "number" && Number.isFinite(v));

/** A revision name of the modern era (ISO dates order as strings). */
export function isModernRevision(v: string | undefined): v is string {
  return v !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(v) && v >= FIRST_MODERN_REVISION;
}

export function metaOf(params: unknown): Record<string, unknown> | undefined {
  const meta = isObject(params) ? params._meta : undefined;
  return isObject(meta) ? meta : undefined;
}

function hasClaim(params: unknown): boolean {
  const meta = metaOf(params);
  return meta !== undefined && META_PROTOCOL_VERSION in meta;
}

/** 400 HeaderMismatch, `data.mismatch` naming the pair that disagrees. */
export function mismatchRejection(id: Id | null, m: Mismatch): Rejection {
  return { status: 400, code: HEADER_MISMATCH, message: `Bad Request: the request headers and body disagree: ${m.body}`, data: { mismatch: m }, id };
}

function mismatch(id: Id | null, m: Mismatch): Classified {
  return { era: "reject", rejection: mismatchRejection(id, m) };
}

function invalid(id: Id | null, code: number, message: string, data?: unknown): Classified {
  return { era: "reject", rejection: { status: 400, code, message, id, ...(data !== undefined && { data }) } };
}

/** The body field `Mcp-Name` mirrors, per method (the spec's "Standard Request Headers" table). */
const NAME_SOURCE: Record<string, "name" | "uri"> = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };

export function classify(headers: IncomingHttpHeaders, body: unknown): Classified {
  if (Array.isArray(body)) {
    // Batches are a legacy form; a modern message in one is refused rather than guessed at.
    if (body.some((m) => isObject(m) && hasClaim(m.params))) return invalid(null, INVALID_REQUEST, "Bad Request: JSON-RPC batches may not carry MCP 2026-07-28 messages");
    return { era: "legacy" };
  }
  if (!isObject(body) || typeof body.method !== "string" || body.method === "initialize") return { era: "legacy" };
  const headerVersion = headerValue(headers, MCP_PROTOCOL_VERSION_HEADER);
  const claim = hasClaim(body.params);
  if (!claim && !isModernRevision(headerVersion)) return { era: "legacy" };

  const isRequest = "id" in body;
  if (isRequest && !isId(body.id)) return invalid(null, INVALID_REQUEST, "Invalid Request: the id must be a string or a number");
  const id = isRequest ? (body.id as Id) : null;
  if (body.jsonrpc !== "2.0") return invalid(id, INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"');
  if (body.params !== undefined && !isObject(body.params)) return invalid(id, INVALID_PARAMS, "Invalid params: params must be an object");
  const message = body as unknown as ModernMessage;

  let version: string;
  if (claim) {
    const claimed = metaOf(body.params)![META_PROTOCOL_VERSION];
    if (typeof claimed !== "string") return invalid(id, INVALID_PARAMS, `Invalid params: _meta["${META_PROTOCOL_VERSION}"] must be a string`);
    if (headerVersion !== undefined && headerVersion !== claimed) {
      return mismatch(id, { header: headerVersion, body: `the body envelope names protocol version ${claimed} but the MCP-Protocol-Version header names ${headerVersion}` });
    }
    version = claimed;
  } else if (isRequest) {
    return invalid(
      id,
      INVALID_PARAMS,
      `Invalid params: the MCP-Protocol-Version header names protocol revision ${headerVersion}, but the request carries no _meta["${META_PROTOCOL_VERSION}"] envelope`,
      {
        envelope: { missing: ["_meta"] },
      },
    );
  } else {
    version = headerVersion!;
  }
  if (!MODERN_REVISIONS.includes(version)) {
    return invalid(id, UNSUPPORTED_PROTOCOL_VERSION, `Unsupported protocol version: ${version}`, { supported: [...MODERN_REVISIONS], requested: version });
  }

  const methodHeader = headerValue(headers, MCP_METHOD_HEADER);
  if (methodHeader !== undefined && methodHeader !== message.method) {
    return mismatch(id, { header: methodHeader, body: `the body names method ${message.method} but the Mcp-Method header names ${methodHeader}` });
  }
  // The spec sets no header requirements for notifications.
  if (!isRequest) return { era: "modern", message, version };
  if (headerVersion === undefined) {
    return mismatch(id, { header: "(missing)", body: `the body envelope names protocol version ${version} but the required MCP-Protocol-Version header is absent` });
  }
  if (methodHeader === undefined) return mismatch(id, { header: "(missing)", body: `the body names method ${message.method} but the required Mcp-Method header is absent` });
  const field = Object.hasOwn(NAME_SOURCE, message.method) ? NAME_SOURCE[message.method] : undefined;
  const bodyName = field === undefined ? undefined : message.params?.[field];
  if (typeof bodyName === "string") {
    const nameHeader = headerValue(headers, MCP_NAME_HEADER);
    if (nameHeader === undefined) return mismatch(id, { header: "(missing)", body: `the body carries params.${field}="${bodyName}" but the required Mcp-Name header is absent` });
    const decoded = decodeHeaderValue(nameHeader);
    if (decoded === undefined) return mismatch(id, { header: nameHeader, body: "the Mcp-Name header carries an invalid value (not header-safe ASCII, or a malformed Base64 sentinel)" });
    if (decoded !== bodyName) return mismatch(id, { header: nameHeader, body: `the body carries params.${field}="${bodyName}" but the Mcp-Name header names "${decoded}"` });
  }
  return { era: "modern", message, version };
}
