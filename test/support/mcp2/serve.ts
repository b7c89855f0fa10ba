/**
 * `serve` (spawned as the real command, dev provider) with a stdio upstream, for the MCP
 * 2026-07-28 tests: the policy that trusts it, an attestedFetch per client, and raw POSTs to /mcp
 * over TLS pinned to the served certificate.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { attestedFetch, type AttestedFetch } from "../../../proxy/client/connector.js";
import { buildPolicy, type Policy } from "../../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../../proxy/evidence/ratls/verify.js";
import { childrenOf, devDir, fetchVia, pinnedAgent, spawnServe, type Answer, type SpawnedServe } from "../robust.js";
import { tempDir } from "../wait.js";
import { MODERN } from "./client.js";
import { SERVER_JS, type Era } from "./spawn.js";

export interface Served extends SpawnedServe {
  url: string;
  /** A policy that trusts this serve (dev root, its MRENCLAVE). */
  policy(freshness?: "exporter" | "nonce" | "certificate"): Promise<Policy>;
  /** A fresh attestedFetch under that policy; closed by `close()`. */
  fetch(freshness?: "exporter" | "nonce" | "certificate"): Promise<AttestedFetch>;
  /** The serve process's live children (stdio MCP servers). */
  children(): number[];
  /** POST a JSON body to /mcp with these headers (JSON and SSE answers read whole). */
  post(body: unknown, headers?: Record<string, string>): Promise<Answer>;
  request(method: string, headers?: Record<string, string>): Promise<Answer>;
  close(): Promise<void>;
}

/** Evidence quotes are cheap under the dev provider; the tests open many connections from one address. */
const LIMITS = "attestationEndpoint: { quotesPerMinute: 100000, quotesPerClientPerMinute: 100000 }\n";

/** serve with `command` as its stdio upstream; `extra` adds YAML under `upstream:`. */
export async function serveCommand(command: string[], extra = ""): Promise<Served> {
  const s = await spawnServe(`${LIMITS}upstream:\n  command: ${JSON.stringify(command)}\n${extra}`);
  const rootPath = join(devDir(), "root.pem");
  const verdict = await verifyRaTlsCertificate(s.certDer, { trustRoots: [readFileSync(rootPath, "utf8")] });
  if (!verdict.ok || verdict.quote?.teeType !== "SGX") throw new Error(`the served certificate does not verify: ${JSON.stringify(verdict.failed)}`);
  const mrenclave = verdict.quote.mrenclave;
  const dir = tempDir("amcp-mcp2-serve-");
  const fetches: AttestedFetch[] = [];
  const agent = pinnedAgent(s.certPem);
  const policy = (freshness: "exporter" | "nonce" | "certificate" = "exporter"): Promise<Policy> =>
    buildPolicy({ trustRoots: [rootPath], measurements: [{ mrenclave }], allowDebug: true, tcb: { require: false }, freshness }, "(test policy)", dir, (p) => readFile(p, "utf8"));
  const base = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  return Object.assign(s, {
    url: `https://127.0.0.1:${s.port}/mcp`,
    policy,
    fetch: async (freshness?: "exporter" | "nonce" | "certificate") => {
      const f = attestedFetch(await policy(freshness));
      fetches.push(f);
      return f;
    },
    children: () => childrenOf(s.pid),
    post: (body: unknown, headers: Record<string, string> = {}) => fetchVia(agent, s.port, "/mcp", { method: "POST", headers: { ...base, ...headers }, body: JSON.stringify(body) }),
    request: (method: string, headers: Record<string, string> = {}) => fetchVia(agent, s.port, "/mcp", { method, headers }),
    close: async () => {
      agent.destroy();
      await Promise.all(fetches.map((f) => f.close().catch(() => {})));
      await s.stop();
    },
  });
}

/** serve with the mcp2 test server as its stdio child. */
export function serveMcp2(era: Era, env: Record<string, string> = {}, extra = ""): Promise<Served> {
  const envYaml = Object.keys(env).length > 0 ? `  env: ${JSON.stringify(env)}\n` : "";
  return serveCommand([process.execPath, SERVER_JS, "--stdio", "--era", era], envYaml + extra);
}

/** The 2026-07-28 envelope a request carries in `params._meta`. */
export const ENVELOPE = {
  "io.modelcontextprotocol/protocolVersion": MODERN,
  "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

/** A modern tools/call and the headers that agree with it. */
export function modernCall(id: number | string, name: string, args: Record<string, unknown>, version = MODERN): { body: unknown; headers: Record<string, string> } {
  return {
    body: { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: { ...ENVELOPE, "io.modelcontextprotocol/protocolVersion": version } } },
    headers: { "mcp-protocol-version": version, "mcp-method": "tools/call", "mcp-name": name },
  };
}

/** The JSON-RPC messages of an answer (one JSON body, or every SSE data line). */
export function messagesOf(a: Answer): Array<Record<string, unknown>> {
  if (String(a.headers["content-type"] ?? "").startsWith("text/event-stream")) {
    return a.body
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
  }
  return a.body ? [JSON.parse(a.body) as Record<string, unknown>] : [];
}

/** A file the test server appends cancellations to. */
export function cancelLogFile(): string {
  const f = join(tempDir("amcp-mcp2-cancel-"), "cancel.log");
  writeFileSync(f, "");
  return f;
}

export function cancelLines(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}
