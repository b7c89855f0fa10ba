/**
 * Client helpers for the v2 TypeScript SDK (`@modelcontextprotocol/client` 2.4) and, for the
 * legacy baseline, the 1.x SDK (`@modelcontextprotocol/sdk`).
 *
 * - `makeClient(opts)`: a v2 `Client` with the negotiation mode set (`pin` → `{ pin: '2026-07-28' }`,
 *   `auto`, `legacy`), the elicitation and sampling capabilities declared, and deterministic handlers
 *   for `elicitation/create` and `sampling/createMessage`. The same handlers answer both the 2025
 *   server-to-client requests and the 2026-07-28 MRTR `inputRequests` (the SDK's auto-fulfilment
 *   dispatches embedded requests to the handlers registered with `setRequestHandler`).
 * - `connectHttp(url, opts)`: over Streamable HTTP; `opts.fetch` is handed to the transport as its
 *   `fetch` (what `attestedFetch(policy)` will be).
 * - `connectStdio(params, opts)`: spawns a command over stdio (read bound raised for big answers).
 *   NB: in `pin` and `auto` mode the SDK probes `server/discover` on a short-lived SIBLING process
 *   spawned from the same parameters, then starts the session child, which never sees the probe.
 * - `negotiatedVersion(client)`, `eraOf(client)`.
 * - `connectV1Stdio` / `connectV1Http`: the SDK 1.x client (legacy `initialize` only).
 */
import { Client, StreamableHTTPClientTransport, type FetchLike } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport as V1StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport as V1StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema as V1ElicitRequestSchema, CreateMessageRequestSchema as V1CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

export const MODERN = "2026-07-28";
export type Mode = "pin" | "auto" | "legacy";

/** What the elicitation handler puts in every string property of the requested schema. */
export const ELICIT_ANSWER = "forty-two";
/** The sampling handler answers `${SAMPLE_PREFIX}${last user text}`. */
export const SAMPLE_PREFIX = "sampled-by-client: ";
export const SAMPLE_MODEL = "mcp2-test-model";

export interface Seen {
  /** `elicitation/create` params the handler answered (both eras). */
  elicitations: Array<{ message?: string; requestedSchema?: unknown }>;
  /** `sampling/createMessage` params the handler answered (both eras). */
  samplings: unknown[];
}

export interface ClientOptions {
  mode: Mode;
  /** The pinned revision in `pin` mode. Default 2026-07-28. */
  pin?: string;
  name?: string;
  /** Probe timeout (pin/auto). Default: the SDK's request timeout (60 s). */
  probeTimeoutMs?: number;
  /** Replace the deterministic elicitation answer. */
  elicit?: (params: { message?: string; requestedSchema?: unknown }) => { action: "accept" | "decline" | "cancel"; content?: Record<string, string | number | boolean | string[]> };
}

export interface Connected<T> {
  client: Client;
  transport: T;
  seen: Seen;
  close(): Promise<void>;
}

function answerFor(schema: unknown): Record<string, string> {
  const props = (schema as { properties?: Record<string, { type?: string }> } | undefined)?.properties ?? {};
  const content: Record<string, string> = {};
  for (const [k, v] of Object.entries(props)) if (v.type === undefined || v.type === "string") content[k] = ELICIT_ANSWER;
  return content;
}

function lastUserText(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as Array<{ role?: string; content?: unknown }>) : [];
  for (let i = list.length - 1; i >= 0; i--) {
    const c = list[i]?.content;
    const first = Array.isArray(c) ? c[0] : c;
    if (first && typeof first === "object" && (first as { type?: string }).type === "text") return String((first as { text?: unknown }).text);
  }
  return "";
}

/** A v2 Client in the given negotiation mode, with deterministic elicitation and sampling handlers. */
export function makeClient(opts: ClientOptions): { client: Client; seen: Seen } {
  const versionNegotiation =
    opts.mode === "legacy"
      ? { mode: "legacy" as const }
      : {
          mode: opts.mode === "pin" ? { pin: opts.pin ?? MODERN } : ("auto" as const),
          ...(opts.probeTimeoutMs !== undefined && { probe: { timeoutMs: opts.probeTimeoutMs } }),
        };
  const client = new Client(
    { name: opts.name ?? "mcp2-test-client", version: "2.0.0" },
    {
      capabilities: { elicitation: { form: {} }, sampling: {} },
      versionNegotiation,
    },
  );
  const seen: Seen = { elicitations: [], samplings: [] };
  client.setRequestHandler("elicitation/create", async (request) => {
    const p = request.params as { message?: string; requestedSchema?: unknown };
    seen.elicitations.push({ message: p.message, requestedSchema: p.requestedSchema });
    if (opts.elicit) return opts.elicit(p);
    return { action: "accept", content: answerFor(p.requestedSchema) };
  });
  client.setRequestHandler("sampling/createMessage", async (request) => {
    seen.samplings.push(request.params);
    return {
      role: "assistant" as const,
      model: SAMPLE_MODEL,
      stopReason: "endTurn",
      content: { type: "text" as const, text: SAMPLE_PREFIX + lastUserText(request.params.messages) },
    };
  });
  return { client, seen };
}

export interface HttpOptions extends ClientOptions {
  /** Given to `StreamableHTTPClientTransport` as `fetch` (e.g. the proxy's `attestedFetch(policy)`). */
  fetch?: FetchLike;
  requestInit?: RequestInit;
  /** connect() timeout (probe + handshake). */
  timeoutMs?: number;
}

export async function connectHttp(url: string | URL, opts: HttpOptions): Promise<Connected<StreamableHTTPClientTransport>> {
  const { client, seen } = makeClient(opts);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    ...(opts.fetch !== undefined && { fetch: opts.fetch }),
    ...(opts.requestInit !== undefined && { requestInit: opts.requestInit }),
    // A lost stream is lost in 2026-07-28 (no resumability); keep legacy reconnects short too.
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 100, maxReconnectionDelay: 100, reconnectionDelayGrowFactor: 1 },
  });
  await client.connect(transport, { timeout: opts.timeoutMs ?? 15_000 });
  return { client, transport, seen, close: () => client.close() };
}

export interface StdioParams {
  command: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Default `pipe` (collected in `stderrText()`); `inherit` to see it. */
  stderr?: "pipe" | "inherit" | "ignore";
  /** Client read bound for one JSON line; default 64 MiB (the SDK's default is 10 MB). */
  maxBufferSize?: number;
}

export interface StdioConnected extends Connected<StdioClientTransport> {
  pid: number | null;
  stderrText(): string;
}

export async function connectStdio(params: StdioParams, opts: ClientOptions & { timeoutMs?: number }): Promise<StdioConnected> {
  const { client, seen } = makeClient(opts);
  const transport = new StdioClientTransport({
    command: params.command,
    args: params.args ?? [],
    env: params.env ?? { PATH: process.env.PATH ?? "" },
    ...(params.cwd !== undefined && { cwd: params.cwd }),
    stderr: params.stderr ?? "pipe",
    maxBufferSize: params.maxBufferSize ?? 64 * 1024 * 1024,
  });
  let err = "";
  transport.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
    if (err.length > 64 * 1024) err = err.slice(-32 * 1024);
  });
  await client.connect(transport, { timeout: opts.timeoutMs ?? 15_000 });
  return { client, transport, seen, pid: transport.pid, stderrText: () => err, close: () => client.close() };
}

/** The negotiated protocol version (`2026-07-28` on a modern connection, the `initialize` answer's on a legacy one). */
export function negotiatedVersion(client: Client): string | undefined {
  return client.getNegotiatedProtocolVersion();
}

export function eraOf(client: Client): "modern" | "legacy" | undefined {
  return client.getProtocolEra();
}

// ---------------------------------------------------------------------------------------------
// SDK 1.x (legacy only)

export interface V1Connected {
  client: V1Client;
  seen: Seen;
  close(): Promise<void>;
}

function makeV1Client(): { client: V1Client; seen: Seen } {
  const client = new V1Client({ name: "mcp2-test-client-v1", version: "1.0.0" }, { capabilities: { elicitation: {}, sampling: {} } });
  const seen: Seen = { elicitations: [], samplings: [] };
  client.setRequestHandler(V1ElicitRequestSchema, async (request) => {
    const p = request.params as { message?: string; requestedSchema?: unknown };
    seen.elicitations.push({ message: p.message, requestedSchema: p.requestedSchema });
    return { action: "accept", content: answerFor(p.requestedSchema) };
  });
  client.setRequestHandler(V1CreateMessageRequestSchema, async (request) => {
    seen.samplings.push(request.params);
    return { role: "assistant", model: SAMPLE_MODEL, stopReason: "endTurn", content: { type: "text", text: SAMPLE_PREFIX + lastUserText(request.params.messages) } };
  });
  return { client, seen };
}

export async function connectV1Stdio(params: StdioParams): Promise<V1Connected> {
  const { client, seen } = makeV1Client();
  const transport = new V1StdioClientTransport({
    command: params.command,
    args: params.args ?? [],
    env: params.env ?? { PATH: process.env.PATH ?? "" },
    stderr: params.stderr ?? "pipe",
  });
  await client.connect(transport, { timeout: 15_000 });
  return { client, seen, close: () => client.close() };
}

export async function connectV1Http(url: string | URL, fetchImpl?: FetchLike): Promise<V1Connected> {
  const { client, seen } = makeV1Client();
  const transport = new V1StreamableHTTPClientTransport(new URL(url), fetchImpl !== undefined ? { fetch: fetchImpl } : undefined);
  await client.connect(transport, { timeout: 15_000 });
  return { client, seen, close: () => client.close() };
}
