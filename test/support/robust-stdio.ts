/**
 * A stdio MCP server that misbehaves on request (newline-delimited JSON-RPC on stdin/stdout):
 * `tools/call` named `exit` makes it exit (code 3) without answering; named `hang` makes it stop
 * answering anything and ignore SIGTERM (only SIGKILL ends it); named `echo` answers its
 * `message`. Everything else gets an empty result.
 */
import { createInterface } from "node:readline";

let hung = false;
const send = (m: unknown): void => void process.stdout.write(JSON.stringify(m) + "\n");

createInterface({ input: process.stdin }).on("line", (line) => {
  if (hung || line.trim() === "") return;
  const m = JSON.parse(line) as { id?: number | string; method?: string; params?: { name?: string; protocolVersion?: string; arguments?: { message?: string } } };
  if (m.id === undefined || m.method === undefined) return;
  if (m.method === "initialize") {
    send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params?.protocolVersion ?? "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "robust-stdio", version: "1" } } });
    return;
  }
  if (m.method === "tools/call") {
    const name = m.params?.name;
    if (name === "exit") process.exit(3);
    if (name === "hang") {
      hung = true;
      process.on("SIGTERM", () => {});
      setInterval(() => {}, 60_000);
      return;
    }
    if (name === "echo") {
      send({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: m.params?.arguments?.message ?? "" }] } });
      return;
    }
  }
  send({ jsonrpc: "2.0", id: m.id, result: {} });
});
process.stdin.on("end", () => {
  if (!hung) process.exit(0);
});
