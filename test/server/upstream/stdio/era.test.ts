/**
 * The era of a POST that names no live session, and the validation of a modern one (headers
 * against the body, the revision, the Base64 sentinel), without any process: modern/era.ts,
 * modern/headers.ts, and the Accept rules of modern/sink.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { classify, type Classified } from "../../../../proxy/server/upstream/stdio/modern/era.js";
import { decodeHeaderValue, display, ToolHeaders } from "../../../../proxy/server/upstream/stdio/modern/headers.js";
import { accepts } from "../../../../proxy/server/upstream/stdio/modern/sink.js";

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const H = { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo" };
const call = (params: Record<string, unknown> = {}) => ({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "echo", arguments: { message: "m" }, _meta: META, ...params } });

function rejected(c: Classified): { status: number; code: number; message: string; data?: unknown; id: unknown } {
  assert.equal(c.era, "reject", JSON.stringify(c));
  return (c as Extract<Classified, { era: "reject" }>).rejection;
}

describe("classify", () => {
  it("legacy: initialize (whatever it carries), no claim, responses, batches without modern messages", () => {
    assert.equal(classify({}, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25" } }).era, "legacy");
    assert.equal(classify(H, { jsonrpc: "2.0", id: 0, method: "initialize", params: { _meta: META } }).era, "legacy");
    assert.equal(classify({ "mcp-protocol-version": "2025-11-25" }, { jsonrpc: "2.0", id: 1, method: "tools/list" }).era, "legacy");
    assert.equal(classify({}, { jsonrpc: "2.0", id: 1, result: {} }).era, "legacy");
    assert.equal(classify({}, [{ jsonrpc: "2.0", id: 1, method: "tools/list" }]).era, "legacy");
    assert.equal(classify({}, "text").era, "legacy");
  });

  it("modern: by header or by envelope; a request that agrees passes", () => {
    const c = classify(H, call());
    assert.equal(c.era, "modern");
    assert.equal((c as Extract<Classified, { era: "modern" }>).version, "2026-07-28");
    const n = classify({ "mcp-protocol-version": "2026-07-28" }, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } });
    assert.equal(n.era, "modern", "a notification needs no envelope");
    assert.equal(classify({ "mcp-protocol-version": " 2026-07-28 ", "mcp-method": "server/discover" }, { jsonrpc: "2.0", id: "p", method: "server/discover", params: { _meta: META } }).era, "modern");
  });

  it("-32020 HeaderMismatch, naming the pair and carrying the request's id", () => {
    const cases: Array<[IncomingHttpHeaders, unknown, RegExp]> = [
      [{ ...H, "mcp-protocol-version": "2025-11-25" }, call(), /envelope names protocol version 2026-07-28 but the MCP-Protocol-Version header names 2025-11-25/],
      [{ "mcp-method": "tools/call", "mcp-name": "echo" }, call(), /required MCP-Protocol-Version header is absent/],
      [{ ...H, "mcp-method": undefined }, call(), /required Mcp-Method header is absent/],
      [{ ...H, "mcp-method": "tools/list" }, call(), /Mcp-Method header names tools\/list/],
      [{ ...H, "mcp-method": "tools/call, tools/call" }, call(), /Mcp-Method header names tools\/call, tools\/call/],
      [{ ...H, "mcp-name": undefined }, call(), /required Mcp-Name header is absent/],
      [{ ...H, "mcp-name": "other" }, call(), /Mcp-Name header names "other"/],
      [{ ...H, "mcp-name": "=?base64?!!!?=" }, call(), /invalid value/],
      [{ ...H, "mcp-name": "ech\u00f6" }, call(), /invalid value/],
      [
        { ...H, "mcp-method": "resources/read", "mcp-name": "mcp2://other" },
        { jsonrpc: "2.0", id: 5, method: "resources/read", params: { uri: "mcp2://hello", _meta: META } },
        /params\.uri="mcp2:\/\/hello"/,
      ],
    ];
    for (const [headers, body, message] of cases) {
      const r = rejected(classify(headers, body));
      assert.equal(r.status, 400);
      assert.equal(r.code, -32020);
      assert.equal(r.id, 5);
      assert.match(r.message, message);
      assert.ok((r.data as { mismatch?: unknown }).mismatch, "data.mismatch");
    }
    // The sentinel decodes before the comparison.
    assert.equal(classify({ ...H, "mcp-name": `=?base64?${Buffer.from("echo").toString("base64")}?=` }, call()).era, "modern");
  });

  it("-32022 for a revision the proxy does not know, with the supported list", () => {
    const future = { ...META, "io.modelcontextprotocol/protocolVersion": "2099-01-01" };
    const r = rejected(classify({ ...H, "mcp-protocol-version": "2099-01-01" }, call({ _meta: future })));
    assert.deepEqual(r, { status: 400, code: -32022, message: "Unsupported protocol version: 2099-01-01", data: { supported: ["2026-07-28"], requested: "2099-01-01" }, id: 5 });
    const legacyClaim = rejected(classify({}, call({ _meta: { ...META, "io.modelcontextprotocol/protocolVersion": "2025-11-25" } })));
    assert.equal(legacyClaim.code, -32022);
  });

  it("-32602 / -32600 for a modern request that is not well-formed", () => {
    assert.equal(rejected(classify(H, { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "echo" } })).code, -32602, "modern header, no envelope");
    assert.equal(rejected(classify(H, call({ _meta: { ...META, "io.modelcontextprotocol/protocolVersion": 7 } }))).code, -32602);
    assert.equal(rejected(classify(H, { ...call(), id: null })).code, -32600);
    assert.equal(rejected(classify({}, [call()])).code, -32600, "no modern message in a batch");
  });
});

describe("header values and x-mcp-header", () => {
  it("the Base64 sentinel: canonical Base64 of UTF-8, else malformed; plain values must be header-safe", () => {
    assert.equal(decodeHeaderValue("us-west1"), "us-west1");
    assert.equal(decodeHeaderValue("=?base64?WsO8cmljaCA=?="), "Zürich ");
    assert.equal(decodeHeaderValue("=?base64?SGVsbG8sIOS4lueVjA==?="), "Hello, 世界");
    assert.equal(decodeHeaderValue("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="), "=?base64?literal?=");
    assert.equal(decodeHeaderValue("=?base64?WsO8cmljaCA?="), undefined, "not canonical (padding)");
    assert.equal(decodeHeaderValue("=?base64?/w==?="), undefined, "not UTF-8");
    assert.equal(decodeHeaderValue("a\u0001b"), undefined);
    assert.equal(display("mcp-param-region"), "Mcp-Param-Region");
  });

  it("ToolHeaders: annotated arguments of a listed tool are required and compared; unlisted tools only checked for encoding", () => {
    const th = new ToolHeaders();
    th.learn({
      tools: [
        {
          name: "route",
          inputSchema: {
            type: "object",
            properties: {
              region: { type: "string", "x-mcp-header": "Region" },
              n: { type: "integer", "x-mcp-header": "N" },
              deep: { type: "object", properties: { flag: { type: "boolean", "x-mcp-header": "Flag" } } },
            },
          },
        },
        { name: "plain", inputSchema: { type: "object", properties: { a: { type: "string" } } } },
      ],
    });
    assert.ok(th.knows("route") && th.knows("plain") && !th.knows("other"));
    const all = { "mcp-param-region": "eu", "mcp-param-n": "42.0", "mcp-param-flag": "true" };
    assert.equal(th.check("route", { region: "eu", n: 42, deep: { flag: true } }, all), undefined, "42.0 equals 42 numerically");
    assert.equal(th.check("route", { region: null }, {}), undefined, "null or absent: no header expected");
    assert.match(th.check("route", { region: "eu" }, {})!.body, /region="eu" but the Mcp-Param-Region header is absent/);
    assert.match(th.check("route", { region: "eu", deep: { flag: false } }, all)!.body, /Mcp-Param-Flag header decodes to "true" but the body carries deep\.flag=false/);
    assert.equal(th.check("plain", { a: "x" }, { "mcp-param-anything": "x" }), undefined, "an unknown header is ignored");
    assert.equal(th.check("other", { a: "x" }, { "mcp-param-a": "y" }), undefined, "unlisted: nothing to compare against");
    assert.match(th.check("other", {}, { "mcp-param-a": "=?base64?***?=" })!.body, /invalid value/);
  });

  it("Accept: both, one, wildcards, none", () => {
    assert.deepEqual(accepts({}), { json: true, sse: true });
    assert.deepEqual(accepts({ accept: "application/json, text/event-stream" }), { json: true, sse: true });
    assert.deepEqual(accepts({ accept: "application/json" }), { json: true, sse: false });
    assert.deepEqual(accepts({ accept: "text/event-stream;q=1" }), { json: false, sse: true });
    assert.deepEqual(accepts({ accept: "*/*" }), { json: true, sse: true });
    assert.deepEqual(accepts({ accept: "text/html" }), { json: false, sse: false });
  });
});
