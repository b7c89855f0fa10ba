/**
 * The stdio bridge's relay and wire rules, against a scripted remote: exact headers per era, the
 * spec's Value Encoding and x-mcp-header constraints, where a session id may come from, how
 * cancellation is carried, and how HTTP failures reach the client. The end-to-end rows with real
 * clients and servers are in stdio-eras.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HttpRelay } from "../../../proxy/client/bridge/relay.js";
import { encodeHeaderValue, scanParamHeaders } from "../../../proxy/client/bridge/wire.js";
import { LineSplitter, SseParser } from "../../../proxy/client/bridge/frames.js";
import { sleep, waitFor } from "../../support/wait.js";

const MODERN = "2026-07-28";
const META = { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

interface Seen {
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  signal: AbortSignal | undefined;
}

type Answer = (s: Seen) => Response | Promise<Response>;

/** A relay whose fetch answers with `script` (by JSON-RPC method, or GET / DELETE) and records every request. */
function scripted(script: Record<string, Answer>) {
  const seen: Seen[] = [];
  const out: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const logs: string[] = [];
  const relay = new HttpRelay({
    url: new URL("https://remote.test/mcp"),
    fetch: async (_u, init) => {
      const headers = Object.fromEntries(new Headers(init?.headers).entries());
      const s: Seen = { method: init?.method ?? "GET", headers, body: init?.body as string | undefined, signal: init?.signal ?? undefined };
      seen.push(s);
      const key = s.method === "POST" ? String((JSON.parse(s.body!) as { method?: string }).method ?? "response") : s.method;
      const answer = script[key];
      if (!answer) return new Response(null, { status: 202 });
      return answer(s);
    },
    write: (line) => {
      raw.push(line);
      out.push(JSON.parse(line) as Record<string, unknown>);
    },
    log: (l) => void logs.push(l),
    onRejected: () => assert.fail("no rejection expected"),
  });
  const posts = (method: string) => seen.filter((s) => s.method === "POST" && ((JSON.parse(s.body!) as { method?: string }).method ?? "response") === method);
  return { relay, seen, out, raw, logs, posts, answer: (id: unknown) => waitFor(() => out.some((m) => m.id === id), 5000, `answer ${String(id)}`).then(() => out.find((m) => m.id === id)!) };
}

const json = (v: unknown, status = 200, headers: Record<string, string> = {}) => new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json", ...headers } });

/** An SSE body that sends `events` and then stays open until the request is aborted. */
function openSse(s: Seen, events: unknown[], end = false): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const e of events) c.enqueue(new TextEncoder().encode(`event: message\ndata: ${JSON.stringify(e)}\n\n`));
      if (end) c.close();
      else s.signal?.addEventListener("abort", () => c.error(new DOMException("aborted", "AbortError")));
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}

describe("bridge wire rules", () => {
  it("Value Encoding: the spec's examples", () => {
    assert.equal(encodeHeaderValue("us-west1"), "us-west1");
    assert.equal(encodeHeaderValue("Hello, 世界"), "=?base64?SGVsbG8sIOS4lueVjA==?=");
    assert.equal(encodeHeaderValue(" padded "), "=?base64?IHBhZGRlZCA=?=");
    assert.equal(encodeHeaderValue("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
    assert.equal(encodeHeaderValue("=?base64?literal?="), "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=");
    assert.equal(encodeHeaderValue("Zürich "), "=?base64?WsO8cmljaCA=?=");
  });

  it("x-mcp-header: valid annotations, and each constraint the spec names", () => {
    const ok = scanParamHeaders({
      type: "object",
      properties: { region: { type: "string", "x-mcp-header": "Region" }, opts: { type: "object", properties: { n: { type: "integer", "x-mcp-header": "N" } } } },
    });
    assert.deepEqual(ok, {
      ok: true,
      headers: [
        { header: "Region", path: ["region"] },
        { header: "N", path: ["opts", "n"] },
      ],
    });
    const bad = (schema: unknown) => {
      const s = scanParamHeaders(schema);
      assert.equal(s.ok, false, JSON.stringify(schema));
      return s.ok ? "" : s.reason;
    };
    assert.match(bad({ properties: { a: { type: "string", "x-mcp-header": "" } } }), /non-empty/);
    assert.match(bad({ properties: { a: { type: "string", "x-mcp-header": "Re gion" } } }), /not an HTTP token/);
    assert.match(bad({ properties: { a: { type: "string", "x-mcp-header": "A\r\nB" } } }), /not an HTTP token/);
    assert.match(bad({ properties: { a: { type: "number", "x-mcp-header": "A" } } }), /string, integer or boolean/);
    assert.match(bad({ properties: { a: { type: "object", "x-mcp-header": "A" } } }), /string, integer or boolean/);
    assert.match(bad({ properties: { a: { type: "string", "x-mcp-header": "X" }, b: { type: "string", "x-mcp-header": "x" } } }), /not unique/);
    assert.match(bad({ properties: { a: { type: "array", items: { type: "string", "x-mcp-header": "A" } } } }), /reached through "properties"/);
    assert.match(bad({ oneOf: [{ properties: { a: { type: "string", "x-mcp-header": "A" } } }] }), /reached through "properties"/);
    assert.match(bad({ $defs: { d: { type: "string", "x-mcp-header": "A" } } }), /reached through "properties"/);
  });

  it("frames: LF, CRLF and CR line ends across chunk cuts; SSE data, event, comments and ids", () => {
    const lines: string[] = [];
    const nl = new LineSplitter((l) => lines.push(l), false);
    for (const c of ['{"a":', '1}\r\n{"b"', ":2}\n\n"]) nl.push(c);
    assert.deepEqual(lines, ['{"a":1}', '{"b":2}', ""]);
    const events: { event: string; data: string }[] = [];
    const sse = new SseParser((e) => events.push(e));
    for (const c of [": keep-alive\r", '\nid: 7\nevent: message\ndata: {"x":', "\ndata: 1}\n\nid: 8\ndata:\n\n", "data: two\r\r"]) sse.push(c);
    assert.deepEqual(events, [
      { event: "message", data: '{"x":\n1}' },
      { event: "message", data: "two" },
    ]);
    assert.equal(sse.lastEventId, "8");
  });
});

describe("bridge relay against a scripted remote", () => {
  it("2026-07-28: version, method and name headers from the message, the line as the body, no session; answers pass byte for byte", async () => {
    const r = scripted({ "tools/call": () => new Response('{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Tool nope not found"}}', { headers: { "content-type": "application/json" } }) });
    const line = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "nöpe", arguments: {}, _meta: META } });
    r.relay.send(line);
    await r.answer(1);
    assert.equal(r.seen[0]!.body, line);
    assert.equal(r.seen[0]!.headers["mcp-protocol-version"], MODERN);
    assert.equal(r.seen[0]!.headers["mcp-method"], "tools/call");
    assert.equal(r.seen[0]!.headers["mcp-name"], encodeHeaderValue("nöpe"));
    assert.equal(r.seen[0]!.headers["mcp-session-id"], undefined);
    assert.deepEqual(r.raw, ['{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Tool nope not found"}}']);
  });

  it("tools/list: a tool with an invalid x-mcp-header is removed (with a warning); a valid one's header is sent on tools/call", async () => {
    const tools = [
      { name: "route", inputSchema: { type: "object", properties: { region: { type: "string", "x-mcp-header": "Region" } } } },
      { name: "broken", inputSchema: { type: "object", properties: { n: { type: "number", "x-mcp-header": "N" } } } },
    ];
    const r = scripted({ "tools/list": () => json({ jsonrpc: "2.0", id: 1, result: { tools } }), "tools/call": () => json({ jsonrpc: "2.0", id: 2, result: { content: [] } }) });
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }));
    const listed = (await r.answer(1)) as { result: { tools: { name: string }[] } };
    assert.deepEqual(
      listed.result.tools.map((t) => t.name),
      ["route"],
    );
    assert.match(r.logs.join("\n"), /warning: tool "broken" removed from tools\/list: .*string, integer or boolean/);
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "route", arguments: { region: " eu" }, _meta: META } }));
    await r.answer(2);
    assert.equal(r.posts("tools/call")[0]!.headers["mcp-param-region"], "=?base64?IGV1?=");
  });

  it("legacy: a session id only from a 2xx answer to initialize; then session and version on every request, the GET stream, DELETE", async () => {
    const r = scripted({
      // A 2025 server refusing the probe, with a session id on the 400 (seen in the wild).
      "server/discover": () => json({ jsonrpc: "2.0", id: null, error: { code: -32000, message: "Bad Request: No valid session ID provided" } }, 400, { "mcp-session-id": "from-a-400" }),
      initialize: () => json({ jsonrpc: "2.0", id: 0, result: { protocolVersion: "2025-06-18", capabilities: {}, serverInfo: { name: "s", version: "1" } } }, 200, { "mcp-session-id": "S1" }),
      "tools/list": () => json({ jsonrpc: "2.0", id: 1, result: { tools: [] } }),
      GET: (s) => openSse(s, [{ jsonrpc: "2.0", id: 0, method: "sampling/createMessage", params: {} }]),
      DELETE: () => new Response(null, { status: 200 }),
    });
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: "probe", method: "server/discover", params: { _meta: META } }));
    // The error the remote could not tie to a request is the probe's: same code and message.
    assert.deepEqual(await r.answer("probe"), { jsonrpc: "2.0", id: "probe", error: { code: -32000, message: "Bad Request: No valid session ID provided" } });
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } }));
    await r.answer(0);
    assert.equal(r.posts("initialize")[0]!.headers["mcp-session-id"], undefined);
    assert.equal(r.posts("initialize")[0]!.headers["mcp-protocol-version"], undefined);
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }));
    await r.answer(1);
    await waitFor(() => r.out.some((m) => m.method === "sampling/createMessage"), 5000, "the server's request on the GET stream");
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 0, result: { model: "m", role: "assistant", content: { type: "text", text: "x" } } }));
    await waitFor(() => r.posts("response").length === 1, 5000, "the client's response POSTed");
    await r.relay.endSession();
    for (const s of [...r.posts("notifications/initialized"), ...r.posts("tools/list"), ...r.posts("response"), ...r.seen.filter((x) => x.method !== "POST")]) {
      assert.equal(s.headers["mcp-session-id"], "S1", `${s.method} ${s.body ?? ""}`);
      assert.equal(s.headers["mcp-protocol-version"], "2025-06-18");
      assert.equal(s.headers["mcp-method"], undefined);
    }
    assert.deepEqual(
      r.seen.map((s) => s.method).filter((m) => m !== "POST"),
      ["GET", "DELETE"],
    );
    r.relay.close();
  });

  it("HTTP failures that are not JSON-RPC become -32000 for that request, naming the status; a stream ending unanswered too", async () => {
    const r = scripted({
      "tools/call": () => new Response("upstream busy", { status: 503, statusText: "Service Unavailable", headers: { "content-type": "text/plain" } }),
      "prompts/get": (s) => openSse(s, [{ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } }], true),
    });
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "x", _meta: META } }));
    assert.deepEqual(await r.answer(5), {
      jsonrpc: "2.0",
      id: 5,
      error: { code: -32000, message: "attestable-mcp bridge: the remote answered HTTP 503 Service Unavailable: upstream busy", data: { status: 503 } },
    });
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 6, method: "prompts/get", params: { name: "p", _meta: META } }));
    const ended = (await r.answer(6)) as { error: { code: number; message: string } };
    assert.equal(ended.error.code, -32000);
    assert.match(ended.error.message, /ended its answer without a response/);
    assert.equal(r.out[1]!.method, "notifications/progress", "what came first was relayed first");
  });

  it("cancellation: 2026-07-28 closes the request's exchange and sends nothing; 2025 POSTs the notification, then closes it", async () => {
    const r = scripted({ "tools/call": (s) => openSse(s, [{ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } }]) });
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 11, method: "tools/call", params: { name: "wait", _meta: META } }));
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", id: 12, method: "tools/call", params: { name: "wait" } }));
    await waitFor(() => r.posts("tools/call").length === 2 && r.out.length === 2, 5000, "both calls open");
    const [modern, legacy] = r.posts("tools/call");
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 11, _meta: META } }));
    await waitFor(() => modern!.signal!.aborted, 5000, "the modern exchange aborted");
    assert.equal(r.posts("notifications/cancelled").length, 0);
    assert.equal(legacy!.signal!.aborted, false);
    r.relay.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 12, reason: "user" } }));
    await waitFor(() => legacy!.signal!.aborted, 5000, "the legacy exchange aborted");
    assert.equal(r.posts("notifications/cancelled").length, 1);
    await sleep(50);
    assert.ok(!r.out.some((m) => m.id === 11 || m.id === 12), "a cancelled request gets no answer from the bridge");
  });
});
