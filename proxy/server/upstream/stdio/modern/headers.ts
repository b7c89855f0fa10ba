/**
 * The header side of MCP 2026-07-28 request validation: header values as the spec encodes them
 * (plain visible ASCII, or the `=?base64?…?=` sentinel around UTF-8) and the `Mcp-Param-{Name}`
 * headers a tool's `x-mcp-header` annotations call for.
 *
 * A stdio child never sees HTTP headers, so the proxy is the only party that can hold them
 * against the body. Which argument a `Mcp-Param-*` header mirrors is written in the tool's
 * `inputSchema`, which only the child knows: the proxy learns it from the `tools/list` answers
 * that pass through the pool. For a tool it has seen listed, every annotated argument is checked
 * as the spec says (absent, malformed or different → HeaderMismatch); for a tool it has not, the
 * `Mcp-Param-*` headers present are checked for their encoding only, as nothing says which
 * argument they stand for.
 */
import type { IncomingHttpHeaders } from "node:http";
import { MCP_PARAM_HEADER_PREFIX } from "../../../../core/protocol.js";

const SENTINEL_PREFIX = "=?base64?";
const SENTINEL_SUFFIX = "?=";
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** RFC 9110 field value: visible ASCII, space and tab. */
const HEADER_SAFE = /^[\t\x20-\x7e]*$/;
const CANONICAL_DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d+)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** RFC 9110 optional whitespace around a field value. */
export function stripOws(v: string): string {
  return v.replace(/^[\t ]+|[\t ]+$/g, "");
}

/** One header's value; a repeated header arrives joined (`a, b`) and so never equals a body value. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return stripOws(Array.isArray(v) ? v.join(", ") : v);
}

/** The value a `Mcp-Name` or `Mcp-Param-*` header carries, decoded; undefined when malformed. */
export function decodeHeaderValue(v: string): string | undefined {
  if (!HEADER_SAFE.test(v)) return undefined;
  if (!(v.startsWith(SENTINEL_PREFIX) && v.endsWith(SENTINEL_SUFFIX) && v.length >= SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length)) return v;
  const b64 = v.slice(SENTINEL_PREFIX.length, v.length - SENTINEL_SUFFIX.length);
  if (!CANONICAL_BASE64.test(b64)) return undefined;
  try {
    return utf8.decode(Buffer.from(b64, "base64"));
  } catch {
    return undefined;
  }
}

/** A disagreement, as the error's `data.mismatch` reports it. */
export interface Mismatch {
  header: string;
  body: string;
}

interface Declaration {
  /** The header's name part, as annotated (`Region` → `Mcp-Param-Region`). */
  name: string;
  /** The chain of `properties` keys from the schema root to the annotated argument. */
  path: string[];
  type: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Annotations reachable through `properties` chains only, as the spec allows them. */
function declarationsOf(schema: unknown, path: string[] = [], out: Declaration[] = []): Declaration[] {
  if (!isObject(schema) || !isObject(schema.properties) || path.length > 16) return out;
  for (const [key, prop] of Object.entries(schema.properties)) {
    if (!isObject(prop)) continue;
    const name = prop["x-mcp-header"];
    if (typeof name === "string" && name !== "") out.push({ name, path: [...path, key], type: prop.type });
    declarationsOf(prop, [...path, key], out);
  }
  return out;
}

function valueAt(root: unknown, path: string[]): unknown {
  let node = root;
  for (const key of path) {
    if (!isObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

/** integer → decimal, boolean → true/false, string as is; anything else is not mirrored. */
function asHeaderString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** Every `Mcp-Param-*` header of the request (lower-case names). */
function paramHeaders(headers: IncomingHttpHeaders): string[] {
  return Object.keys(headers).filter((k) => k.startsWith(MCP_PARAM_HEADER_PREFIX) && k.length > MCP_PARAM_HEADER_PREFIX.length);
}

/** Tool name → its annotated arguments, from the `tools/list` answers seen. */
export class ToolHeaders {
  private readonly tools = new Map<string, Declaration[]>();
  /** Tools remembered at most; a server listing more is checked by encoding only past this. */
  static readonly MAX_TOOLS = 4096;

  /** Learns from one `tools/list` result (any page of it). */
  learn(result: unknown): void {
    const tools = isObject(result) && Array.isArray(result.tools) ? result.tools : [];
    for (const t of tools) {
      if (!isObject(t) || typeof t.name !== "string") continue;
      if (!this.tools.has(t.name) && this.tools.size >= ToolHeaders.MAX_TOOLS) continue;
      this.tools.set(t.name, declarationsOf(t.inputSchema));
    }
  }

  /** Whether the tool's annotations are known (a listing named it). */
  knows(tool: string): boolean {
    return this.tools.has(tool);
  }

  /** The first disagreement between a `tools/call`'s headers and its arguments, if any. */
  check(tool: string | undefined, args: unknown, headers: IncomingHttpHeaders): Mismatch | undefined {
    for (const h of paramHeaders(headers)) {
      if (decodeHeaderValue(headerValue(headers, h) ?? "") === undefined)
        return { header: display(h), body: `the ${display(h)} header carries an invalid value (not header-safe ASCII, or a malformed Base64 sentinel)` };
    }
    const decls = tool === undefined ? undefined : this.tools.get(tool);
    for (const d of decls ?? []) {
      const raw = valueAt(args, d.path);
      const want = raw === null || raw === undefined ? undefined : asHeaderString(raw);
      if (want === undefined) continue;
      const name = `${MCP_PARAM_HEADER_PREFIX}${d.name.toLowerCase()}`;
      const label = display(name);
      const v = headerValue(headers, name);
      const arg = d.path.join(".");
      if (v === undefined) return { header: label, body: `the body carries ${arg}=${JSON.stringify(raw)} but the ${label} header is absent` };
      const got = decodeHeaderValue(v)!;
      const numeric = (d.type === "integer" || d.type === "number") && typeof raw === "number" && CANONICAL_DECIMAL.test(got);
      if (numeric ? Number(got) !== raw : got !== want) return { header: label, body: `the ${label} header decodes to ${JSON.stringify(got)} but the body carries ${arg}=${JSON.stringify(raw)}` };
    }
    return undefined;
  }
}

/** `mcp-param-region` → `Mcp-Param-Region`, as people write it. */
export function display(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}
