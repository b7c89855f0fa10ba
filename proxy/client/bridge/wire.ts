/**
 * What an MCP 2026-07-28 Streamable HTTP client derives from each message it sends (spec:
 * basic/transports/streamable-http.mdx, "Standard Request Headers", "Custom Headers from Tool
 * Parameters", "Value Encoding"): MCP-Protocol-Version from the `_meta` envelope, Mcp-Method,
 * Mcp-Name, and Mcp-Param-{Name} from the tools' `x-mcp-header` annotations. The stdio bridge is
 * that client on behalf of a desktop client that speaks stdio, where none of these exist.
 */
import { MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PARAM_HEADER_PREFIX, MCP_PROTOCOL_VERSION_HEADER, META_PROTOCOL_VERSION } from "../../core/protocol.js";

export type RequestId = string | number;

/** A JSON-RPC message as read, before anything is assumed about its shape. */
export interface Message {
  jsonrpc?: unknown;
  id?: RequestId | null;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}

/** The legacy (2025) session header; 2026-07-28 has no sessions. */
export const HEADER_SESSION = "mcp-session-id";
const X_MCP_HEADER = "x-mcp-header";

export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
export const mediaType = (h: string | null): string => (h ?? "").split(";", 1)[0]!.trim().toLowerCase();

export function isJsonRpcError(v: unknown): v is Message & { error: { code: number; message: string } } {
  return isObject(v) && v.jsonrpc === "2.0" && isObject(v.error) && typeof v.error.code === "number" && typeof v.error.message === "string";
}

/** A message (or batch) as a log line names it. */
export function describe(msgs: Message[]): string {
  if (msgs.length !== 1) return `a batch of ${msgs.length}`;
  const m = msgs[0]!;
  if (isRequest(m)) return `${String(m.method)} (id ${String(m.id)})`;
  return typeof m.method === "string" ? m.method : `the response to id ${String(m.id)}`;
}

/** An HTTP body as one short line, for an error message. */
export function snippet(text: string): string {
  const s = text.replace(/\s+/g, " ").trim();
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

export function isRequest(m: Message): boolean {
  return typeof m.method === "string" && m.id !== undefined && m.id !== null;
}

export function isNotification(m: Message): boolean {
  return typeof m.method === "string" && m.id === undefined;
}

export function isResponse(m: Message): boolean {
  return m.method === undefined && ("result" in m || "error" in m);
}

/** The revision a 2026-07-28 (or later) message names in its envelope; undefined on legacy messages. */
export function envelopeVersion(m: Message): string | undefined {
  const meta = isObject(m.params) ? m.params._meta : undefined;
  const v = isObject(meta) ? meta[META_PROTOCOL_VERSION] : undefined;
  return typeof v === "string" ? v : undefined;
}

const SENTINEL_PREFIX = "=?base64?";
const SENTINEL_SUFFIX = "?=";

/**
 * A header value as the spec's Value Encoding says: plain when every character is visible ASCII,
 * space or tab and there is no leading or trailing whitespace (field parsing would strip it);
 * otherwise, and for a plain value that looks like the sentinel, `=?base64?{UTF-8 base64}?=`.
 */
export function encodeHeaderValue(s: string): string {
  const plain = s.length > 0 && s === s.trim() && /^[\t\x20-\x7e]*$/.test(s) && !(s.startsWith(SENTINEL_PREFIX) && s.endsWith(SENTINEL_SUFFIX));
  return plain ? s : `${SENTINEL_PREFIX}${Buffer.from(s, "utf8").toString("base64")}${SENTINEL_SUFFIX}`;
}

/** Which member of params names the target, for the methods that carry Mcp-Name. */
const NAMED_BY: Readonly<Record<string, "name" | "uri">> = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };

/** One `x-mcp-header` annotation: the header name and the chain of `properties` keys to the value. */
export interface ParamHeader {
  header: string;
  path: string[];
}

export type Scan = { ok: true; headers: ParamHeader[] } | { ok: false; reason: string };

/** RFC 9110 §5.1 token (1*tchar): no spaces, controls (CR, LF) or delimiters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PRIMITIVE = new Set(["string", "integer", "boolean"]);
/** Keywords whose subschemas are not reached by a chain of `properties` keys. */
const UNREACHABLE = [
  "items",
  "prefixItems",
  "contains",
  "additionalProperties",
  "unevaluatedProperties",
  "unevaluatedItems",
  "propertyNames",
  "patternProperties",
  "dependentSchemas",
  "oneOf",
  "anyOf",
  "allOf",
  "not",
  "if",
  "then",
  "else",
  "$defs",
  "definitions",
];
const KEYED = new Set(["patternProperties", "dependentSchemas", "$defs", "definitions"]);

/**
 * The annotations of one tool's inputSchema, or the first constraint it violates: a non-empty
 * token, case-insensitively unique, on a string, integer or boolean property (not number) that is
 * reached from the root through `properties` keys only. An annotation anywhere else (under items,
 * a composition or conditional keyword, $defs) makes the whole tool invalid, as the spec says.
 */
export function scanParamHeaders(inputSchema: unknown): Scan {
  const headers: ParamHeader[] = [];
  const seen = new Map<string, string>();
  const where = (path: string[]): string => (path.length ? path.join(".") : "<root>");
  const visit = (node: unknown, path: string[], reachable: boolean): string | undefined => {
    if (!isObject(node)) return undefined;
    if (X_MCP_HEADER in node) {
      const raw = node[X_MCP_HEADER];
      if (!reachable || path.length === 0) return `${where(path)}: x-mcp-header is only allowed on a property reached through "properties" keys alone`;
      if (typeof raw !== "string" || raw.length === 0) return `${where(path)}: x-mcp-header must be a non-empty string`;
      if (!TOKEN.test(raw)) return `${where(path)}: x-mcp-header ${JSON.stringify(raw)} is not an HTTP token`;
      const type = node.type;
      if (typeof type !== "string" || !PRIMITIVE.has(type)) return `${where(path)}: x-mcp-header is only allowed on string, integer or boolean properties (type ${JSON.stringify(type ?? null)})`;
      const prior = seen.get(raw.toLowerCase());
      if (prior !== undefined) return `x-mcp-header ${JSON.stringify(raw)} is not unique (case-insensitively the same as ${JSON.stringify(prior)})`;
      seen.set(raw.toLowerCase(), raw);
      headers.push({ header: raw, path });
    }
    if (isObject(node.properties)) {
      for (const [key, child] of Object.entries(node.properties)) {
        const fault = visit(child, [...path, key], reachable);
        if (fault) return fault;
      }
    }
    for (const k of UNREACHABLE) {
      const sub = node[k];
      if (sub === undefined) continue;
      const branches = Array.isArray(sub) ? sub : KEYED.has(k) && isObject(sub) ? Object.values(sub) : [sub];
      for (const b of branches) {
        const fault = visit(b, [...path, `<${k}>`], false);
        if (fault) return fault;
      }
    }
    return undefined;
  };
  const fault = visit(inputSchema, [], true);
  return fault ? { ok: false, reason: fault } : { ok: true, headers };
}

/** integer → decimal, boolean → true/false, string as is; anything else (or an unsafe integer) has no header. */
function headerText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number" && Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v))) return String(v);
  return undefined;
}

export interface Excluded {
  name: string;
  reason: string;
}

/** The tools' annotations as learned from the tools/list results that went through the bridge. */
export class ToolHeaders {
  private readonly byName = new Map<string, ParamHeader[]>();

  /**
   * Learns every tool of a tools/list result and returns the tools whose annotations are invalid,
   * removed from `result.tools` (in place) so that the desktop client never calls them.
   */
  learn(result: unknown): Excluded[] {
    if (!isObject(result) || !Array.isArray(result.tools)) return [];
    const excluded: Excluded[] = [];
    const kept = result.tools.filter((tool: unknown) => {
      if (!isObject(tool) || typeof tool.name !== "string") return true;
      const scan = scanParamHeaders(tool.inputSchema);
      if (scan.ok) {
        this.byName.set(tool.name, scan.headers);
        return true;
      }
      this.byName.delete(tool.name);
      excluded.push({ name: tool.name, reason: scan.reason });
      return false;
    });
    if (excluded.length) result.tools = kept;
    return excluded;
  }

  /** Mcp-Param-{Name} for one call; a value absent from the arguments has no header. */
  paramHeaders(tool: string, args: unknown): Record<string, string> {
    const out: Record<string, string> = {};
    for (const { header, path } of this.byName.get(tool) ?? []) {
      let v: unknown = args;
      for (const key of path) v = isObject(v) ? v[key] : undefined;
      const text = v === null || v === undefined ? undefined : headerText(v);
      if (text !== undefined) out[`${MCP_PARAM_HEADER_PREFIX}${header}`] = encodeHeaderValue(text);
    }
    return out;
  }
}

/**
 * The headers of a POST carrying a 2026-07-28 message: the version from its envelope, and for a
 * request Mcp-Method, Mcp-Name and the tool's Mcp-Param headers. A notification carries only the
 * version (the revision defines no other header for notification POSTs).
 */
export function modernHeaders(m: Message, version: string, tools: ToolHeaders): Record<string, string> {
  const h: Record<string, string> = { [MCP_PROTOCOL_VERSION_HEADER]: version };
  if (!isRequest(m) || typeof m.method !== "string") return h;
  h[MCP_METHOD_HEADER] = m.method;
  const member = NAMED_BY[m.method];
  const params = isObject(m.params) ? m.params : {};
  const name = member ? params[member] : undefined;
  if (typeof name === "string") h[MCP_NAME_HEADER] = encodeHeaderValue(name);
  if (m.method === "tools/call" && typeof name === "string") Object.assign(h, tools.paramHeaders(name, params.arguments));
  return h;
}
