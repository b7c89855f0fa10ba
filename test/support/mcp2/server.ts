/**
 * A real MCP server on the v2 TypeScript SDK (`@modelcontextprotocol/server` 2.4), the part the
 * proxy's 2026-07-28 work is tested against. Runnable as a script:
 *
 *   node server.js --stdio           [--era modern|dual|legacy]
 *   node server.js --http PORT       [--era modern|dual|legacy] [--response-mode auto|sse|json]
 *                                    [--http-legacy sessionful|stateless]
 *
 * `--http 0` takes a free port; the first line on stdout is then `LISTENING <port>` (HTTP mode
 * only: in stdio mode stdout is the protocol channel). HTTP listens on 127.0.0.1 only.
 *
 * Eras (SDK vocabulary):
 * - `modern`: 2026-07-28 only. stdio: `serveStdio(factory, { legacy: 'reject' })`, HTTP:
 *   `createMcpHandler(factory, { legacy: 'reject' })`; an `initialize` is refused with the
 *   unsupported-protocol-version error naming the modern revisions.
 * - `dual`: stdio `serveStdio(factory)` (the SDK default) pins the connection to the era its first
 *   message selects. HTTP: 2026-07-28 through `createMcpHandler`; 2025 traffic, by default, to a
 *   sessionful 2025 wiring chosen by `isLegacyRequest` (see `HttpLegacy`; `--http-legacy stateless`
 *   gives the SDK's own default, a stateless fallback that cannot do server-to-client requests).
 * - `legacy`: a 2025-era server as the SDK builds one without a serving entry: `McpServer` with the
 *   default `supportedProtocolVersions` (2025-11-25 … 2024-10-07, no 2026 revision, so the SDK
 *   installs no `server/discover` handler) connected to `StdioServerTransport`, or, on HTTP, to
 *   one sessionful `WebStandardStreamableHTTPServerTransport` per `initialize` (the 2025 shape:
 *   `Mcp-Session-Id`, GET stream, DELETE). It does not know `server/discover`.
 *
 * Tools: echo, route (x-mcp-header), progress, log, ask (elicitation), sample (sampling), big, quiet,
 * wait_cancel, touch.
 * Resource `mcp2://hello`, prompt `greet`.
 *
 * Env: MCP2_CANCEL_LOG names a file; `wait_cancel` appends `started <id>` when it begins and
 * `cancelled <id>` when its abort signal fires (notifications/cancelled on stdio and legacy
 * HTTP, the closed response stream on 2026-07-28 HTTP). `<id>` is the JSON-RPC request id.
 */
import { appendFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  McpServer,
  createMcpHandler,
  fromJsonSchema,
  inputRequired,
  acceptedContent,
  inputResponse,
  WebStandardStreamableHTTPServerTransport,
  isInitializeRequest,
  isLegacyRequest,
  type McpHttpHandler,
  type McpRequestContext,
  type ServerContext,
  type CallToolResult,
  type PerRequestResponseMode,
  type JsonSchemaType,
  type ElicitRequestFormParams,
} from "@modelcontextprotocol/server";
import { serveStdio, StdioServerTransport } from "@modelcontextprotocol/server/stdio";

export type Era = "modern" | "dual" | "legacy";

export const SERVER_NAME = "mcp2-test-server";
export const SERVER_VERSION = "2.0.0";
export const HELLO_URI = "mcp2://hello";
export const HELLO_TEXT = "hello from mcp2";
/** What the elicitation / sampling tools ask for, so tests can match the request they answer. */
export const ASK_KEY = "answer";
export const SAMPLE_KEY = "completion";

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

const text = (s: string): CallToolResult => ({ content: [{ type: "text", text: s }] });

function cancelLog(line: string): void {
  const file = process.env.MCP2_CANCEL_LOG;
  if (file) appendFileSync(file, line + "\n");
}

/** Counts `touch` calls for the whole process, so per-request HTTP instances see the change too. */
let touches = 0;

/** Set in HTTP modern/dual mode: `touch` publishes through it (per-request instances have no stream of their own). */
let httpHandler: McpHttpHandler | undefined;

const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)): JsonSchemaType => ({ type: "object", properties, required }) as unknown as JsonSchemaType;

/**
 * One server instance. `era` is the era the instance serves (the serving entry says which; the
 * legacy-only server passes `legacy`). The same definitions serve both eras; only `ask` and
 * `sample` branch: 2026-07-28 answers with an InputRequiredResult (MRTR), 2025 sends the
 * server-to-client request (`elicitation/create`, `sampling/createMessage`) mid-call.
 */
export function buildServer(era: "modern" | "legacy"): McpServer {
  const server = new McpServer(
    { name: SERVER_NAME, version: SERVER_VERSION },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
      },
      instructions: "Test server for attestable-mcp-proxy (MCP 2026-07-28 and legacy).",
    },
  );

  server.registerTool("echo", { description: "Echoes its message", inputSchema: fromJsonSchema<{ message: string }>(obj({ message: { type: "string" } })) }, async ({ message }) => text(message));

  server.registerTool(
    "route",
    {
      description: "Echoes region and text; `region` is mirrored into the Mcp-Param-Region header on 2026-07-28 HTTP (x-mcp-header)",
      inputSchema: fromJsonSchema<{ region: string; text: string }>(obj({ region: { type: "string", "x-mcp-header": "Region" }, text: { type: "string" } })),
    },
    async ({ region, text: t }) => text(`${region}: ${t}`),
  );

  server.registerTool(
    "progress",
    {
      description: "Sends notifications/progress every step (when the request carries a progressToken), one log message, then answers",
      inputSchema: fromJsonSchema<{ steps: number; ms: number }>(obj({ steps: { type: "integer" }, ms: { type: "integer" } })),
    },
    async ({ steps, ms }, ctx: ServerContext) => {
      const token = ctx.mcpReq._meta?.progressToken;
      // 2026-07-28: sent only when the request's _meta carried io.modelcontextprotocol/logLevel (the SDK gates it).
      await ctx.mcpReq.log("info", `progress: ${steps} steps of ${ms} ms`, "mcp2");
      for (let i = 1; i <= steps; i++) {
        await sleep(ms, ctx.mcpReq.signal);
        if (ctx.mcpReq.signal.aborted) break;
        if (token !== undefined) {
          await ctx.mcpReq.notify({ method: "notifications/progress", params: { progressToken: token, progress: i, total: steps, message: `step ${i}/${steps}` } });
        }
      }
      return text(`progress done: ${steps}`);
    },
  );

  server.registerTool(
    "log",
    { description: "Sends one notifications/message at the given level, then answers", inputSchema: fromJsonSchema<{ message: string }>(obj({ message: { type: "string" } })) },
    async ({ message }, ctx: ServerContext) => {
      await ctx.mcpReq.log("info", message, "mcp2");
      return text(`logged: ${message}`);
    },
  );

  server.registerTool(
    "ask",
    { description: "Asks the client a question through elicitation", inputSchema: fromJsonSchema<{ question: string }>(obj({ question: { type: "string" } })) },
    async ({ question }, ctx: ServerContext) => {
      const requestedSchema: ElicitRequestFormParams["requestedSchema"] = {
        type: "object",
        properties: { [ASK_KEY]: { type: "string", description: question } },
        required: [ASK_KEY],
      };
      if (era === "legacy") {
        const r = await ctx.mcpReq.elicitInput({ mode: "form", message: question, requestedSchema });
        if (r.action !== "accept") return text(`elicitation ${r.action}`);
        return text(`answer: ${String(r.content?.[ASK_KEY])}`);
      }
      const got = acceptedContent(ctx.mcpReq.inputResponses, ASK_KEY);
      if (got === undefined) {
        const seen = inputResponse(ctx.mcpReq.inputResponses, ASK_KEY);
        if (seen.kind === "elicit") return text(`elicitation ${seen.action}`);
        return inputRequired({
          inputRequests: { [ASK_KEY]: inputRequired.elicit({ mode: "form", message: question, requestedSchema }) },
          requestState: `ask:${Date.now()}`,
        });
      }
      return text(`answer: ${String(got[ASK_KEY])}`);
    },
  );

  server.registerTool(
    "sample",
    { description: "Asks the client for an LLM completion (sampling)", inputSchema: fromJsonSchema<{ prompt: string }>(obj({ prompt: { type: "string" } })) },
    async ({ prompt }, ctx: ServerContext) => {
      const params = { messages: [{ role: "user" as const, content: { type: "text" as const, text: prompt } }], maxTokens: 64 };
      if (era === "legacy") {
        const r = await ctx.mcpReq.requestSampling(params);
        const c = Array.isArray(r.content) ? r.content[0] : r.content;
        return text(`sampled: ${c && c.type === "text" ? c.text : JSON.stringify(c)}`);
      }
      const seen = inputResponse(ctx.mcpReq.inputResponses, SAMPLE_KEY);
      if (seen.kind !== "sampling") {
        return inputRequired({ inputRequests: { [SAMPLE_KEY]: inputRequired.createMessage(params) } });
      }
      const content = seen.result.content;
      const c = Array.isArray(content) ? content[0] : content;
      return text(`sampled: ${c && c.type === "text" ? c.text : JSON.stringify(c)}`);
    },
  );

  server.registerTool("big", { description: "Answers a text of `mb` MiB", inputSchema: fromJsonSchema<{ mb: number }>(obj({ mb: { type: "number" } })) }, async ({ mb }) =>
    text("x".repeat(Math.round(mb * 1024 * 1024))),
  );

  server.registerTool(
    "quiet",
    { description: "Answers after `ms`, sending nothing meanwhile", inputSchema: fromJsonSchema<{ ms: number }>(obj({ ms: { type: "integer" } })) },
    async ({ ms }, ctx: ServerContext) => {
      await sleep(ms, ctx.mcpReq.signal);
      return text(`quiet ${ms}`);
    },
  );

  server.registerTool(
    "wait_cancel",
    {
      description: "Waits `ms` or until cancelled; records the cancellation in $MCP2_CANCEL_LOG",
      inputSchema: fromJsonSchema<{ ms: number }>(obj({ ms: { type: "integer" } })),
    },
    async ({ ms }, ctx: ServerContext) => {
      const id = String(ctx.mcpReq.id);
      cancelLog(`started ${id}`);
      const signal = ctx.mcpReq.signal;
      const onAbort = () => cancelLog(`cancelled ${id}`);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      await sleep(ms, signal);
      signal.removeEventListener("abort", onAbort);
      return text(signal.aborted ? `cancelled ${id}` : `waited ${ms}`);
    },
  );

  server.registerTool("touch", { description: "Changes the tool list and updates mcp2://hello (list-changed / resource-updated notifications)" }, async () => {
    touches++;
    if (!server.isConnected()) return text(`touched ${touches}`);
    if (httpHandler !== undefined && era === "modern") {
      // createMcpHandler: per-request instances; subscriptions/listen streams hang off the handler's bus.
      httpHandler.notify.toolsChanged();
      httpHandler.notify.resourceUpdated(HELLO_URI);
    } else {
      // stdio (serveStdio routes these onto the open subscriptions/listen streams on a 2026-07-28
      // connection) and legacy sessions (unsolicited notifications, the 2025 model).
      // Registering on a connected McpServer already sends tools/list_changed.
      if (!registerTouched(server)) server.sendToolListChanged();
      await server.server.sendResourceUpdated({ uri: HELLO_URI });
    }
    return text(`touched ${touches}`);
  });
  if (touches > 0) registerTouched(server);

  server.registerResource("hello", HELLO_URI, { title: "Hello", mimeType: "text/plain" }, async (uri) => ({
    contents: [{ uri: uri.href, mimeType: "text/plain", text: HELLO_TEXT }],
  }));

  server.registerPrompt("greet", { description: "Greets someone", argsSchema: fromJsonSchema<{ name: string }>(obj({ name: { type: "string" } })) }, ({ name }) => ({
    messages: [{ role: "user", content: { type: "text", text: `Hello, ${name}!` } }],
  }));

  if (era === "legacy") {
    // 2025: resources/subscribe and unsubscribe exist (2026-07-28 replaced them with subscriptions/listen).
    server.server.setRequestHandler("resources/subscribe", async () => ({}));
    server.server.setRequestHandler("resources/unsubscribe", async () => ({}));
  }
  return server;
}

/** The tool `touch` adds, so the tool list really changes. */
function registerTouched(server: McpServer): boolean {
  try {
    server.registerTool("touched", { description: "Exists once `touch` ran" }, async () => text(`touched ${touches}`));
    return true;
  } catch {
    return false; // already registered on this instance
  }
}

const factory = (ctx: McpRequestContext): McpServer => buildServer(ctx.era);

// ---------------------------------------------------------------------------------------------
// stdio

export async function runStdio(era: Era): Promise<void> {
  const onerror = (e: Error) => process.stderr.write(`[mcp2 stdio] ${e.message}\n`);
  // Both sides of a stdio pipe read one JSON line at a time into a buffer bounded by default at
  // 10 MB; `big` answers more than that, so the server's read bound is raised (and the client
  // helper raises its own).
  const wire = new StdioServerTransport(process.stdin, process.stdout, { maxBufferSize: 64 * 1024 * 1024 });
  // The stdio binding: exit promptly once stdin ends.
  process.stdin.once("end", () => setTimeout(() => process.exit(0), 50));
  if (era === "legacy") {
    await buildServer("legacy").connect(wire);
    return;
  }
  serveStdio(factory, { legacy: era === "modern" ? "reject" : "serve", transport: wire, onerror });
}

// ---------------------------------------------------------------------------------------------
// HTTP (node:http ⇄ fetch Request/Response; no @modelcontextprotocol/node in this tree)

type FetchHandler = (req: Request) => Promise<Response>;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Node request → web Request whose signal aborts when the client goes away before the answer ended. */
async function toWebRequest(req: IncomingMessage, res: ServerResponse, port: number): Promise<Request> {
  const ac = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) ac.abort();
  });
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) headers.append(k, x);
    else headers.set(k, v);
  }
  const method = req.method ?? "GET";
  const body = method === "GET" || method === "HEAD" ? undefined : await readBody(req);
  return new Request(`http://127.0.0.1:${port}${req.url ?? "/"}`, { method, headers, body: body as BodyInit | undefined, signal: ac.signal });
}

async function writeWebResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((v, k) => {
    headers[k] = v;
  });
  res.writeHead(response.status, response.statusText, headers);
  if (response.body === null) {
    res.end();
    return;
  }
  const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
  res.once("close", () => body.destroy());
  body.on("error", () => res.destroy());
  body.pipe(res);
}

function legacyHttpHandler(): FetchHandler {
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  return async (request) => {
    const sid = request.headers.get("mcp-session-id");
    if (sid !== null) {
      const t = sessions.get(sid);
      if (t === undefined) return Response.json({ jsonrpc: "2.0", error: { code: -32001, message: "Session not found" }, id: null }, { status: 404 });
      return t.handleRequest(request);
    }
    if (request.method === "POST") {
      const body: unknown = await request
        .clone()
        .json()
        .catch(() => undefined);
      if (isInitializeRequest(body)) {
        const transport = new WebStandardStreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            sessions.set(id, transport);
          },
          onsessionclosed: (id) => {
            sessions.delete(id);
          },
        });
        const server = buildServer("legacy");
        await server.connect(transport);
        return transport.handleRequest(request, { parsedBody: body });
      }
    }
    // What the SDK's 2025 sessionful examples answer to anything else before initialize.
    return Response.json({ jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: No valid session ID provided" }, id: null }, { status: 400 });
  };
}

export interface HttpServerHandle {
  port: number;
  close(): Promise<void>;
}

/**
 * How a dual HTTP server serves 2025-era traffic:
 * - `sessionful` (default here): `createMcpHandler(factory, { legacy: 'reject' })` for 2026-07-28,
 *   with `isLegacyRequest(request)` routing 2025 traffic to a sessionful 2025 wiring (the pattern
 *   the SDK documents for keeping a legacy deployment next to the strict modern endpoint). Legacy
 *   clients get server-to-client requests (elicitation, sampling), `Mcp-Session-Id`, GET, DELETE.
 * - `stateless`: the SDK default, `createMcpHandler(factory)` — every legacy POST gets a fresh
 *   instance that never saw `initialize`, so it does not know the client's capabilities
 *   (`ask` answers "Client does not support form elicitation.") and cannot receive the answer to
 *   a server-to-client request (`sample` hangs until the client's timeout).
 */
export type HttpLegacy = "sessionful" | "stateless";

export async function runHttp(era: Era, port: number, responseMode: PerRequestResponseMode = "auto", httpLegacy: HttpLegacy = "sessionful"): Promise<HttpServerHandle> {
  let fetchHandler: FetchHandler;
  if (era === "legacy") {
    fetchHandler = legacyHttpHandler();
  } else {
    const sessionful = era === "dual" && httpLegacy === "sessionful";
    const handler = createMcpHandler(factory, {
      legacy: era === "modern" || sessionful ? "reject" : "stateless",
      responseMode,
      onerror: (e) => process.stderr.write(`[mcp2 http] ${e.message}\n`),
    });
    httpHandler = handler;
    if (sessionful) {
      const legacy = legacyHttpHandler();
      fetchHandler = async (req) => ((await isLegacyRequest(req)) ? legacy(req) : handler.fetch(req));
    } else {
      fetchHandler = (req) => handler.fetch(req);
    }
  }
  let actualPort = port;
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const request = await toWebRequest(req, res, actualPort);
        const response = await fetchHandler(request);
        await writeWebResponse(res, response);
      } catch (e) {
        process.stderr.write(`[mcp2 http] ${(e as Error).stack ?? String(e)}\n`);
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  actualPort = (server.address() as { port: number }).port;
  return {
    port: actualPort,
    close: async () => {
      await httpHandler?.close().catch(() => {});
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const era = (arg("--era") ?? "dual") as Era;
  if (!["modern", "dual", "legacy"].includes(era)) throw new Error(`--era must be modern, dual or legacy, not ${era}`);
  if (process.argv.includes("--stdio")) return runStdio(era);
  const p = arg("--http");
  if (p !== undefined) {
    const mode = (arg("--response-mode") ?? "auto") as PerRequestResponseMode;
    const httpLegacy = (arg("--http-legacy") ?? "sessionful") as HttpLegacy;
    const h = await runHttp(era, Number(p), mode, httpLegacy);
    process.stdout.write(`LISTENING ${h.port}\n`);
    const stop = () => void h.close().finally(() => process.exit(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    return;
  }
  throw new Error("usage: server.js --stdio | --http PORT  [--era modern|dual|legacy] [--response-mode auto|sse|json] [--http-legacy sessionful|stateless]");
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  main().catch((e) => {
    process.stderr.write(`[mcp2] ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
