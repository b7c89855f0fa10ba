/**
 * Records what the v2 SDK puts on the wire, for the proxy's 2026-07-28 work:
 *
 *   node transcript.js OUT.md
 *
 * stdio through `tee.js` (every line each way), HTTP through a logging `fetch` given to the
 * client transport (request headers and bodies, response status, headers and body chunks as they
 * arrive). Not a test: it asserts nothing, it writes what it saw. Network: 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { connectStdio, connectHttp, type Mode } from "./client.js";
import type { Client } from "@modelcontextprotocol/client";
import { sleep, tempDir } from "../wait.js";

const here = dirname(fileURLToPath(import.meta.url));
const SERVER = join(here, "server.js");
const TEE = join(here, "tee.js");
const dir = tempDir("mcp2-wire-");
const out: string[] = [];
const md = (s: string) => out.push(s);

const LOGLEVEL = { "io.modelcontextprotocol/logLevel": "debug" };

/** The same actions over any connection, with a marker before each. */
async function actions(client: Client, mark: (s: string) => void, opts: { big?: boolean; listen?: boolean } = {}): Promise<void> {
  mark("echo");
  await client.callTool({ name: "echo", arguments: { message: "hi" } });
  mark("route {region:'us-west1'} (x-mcp-header: Region) BEFORE any tools/list: the client has no schema to mirror from");
  await client.callTool({ name: "route", arguments: { region: "us-west1", text: "a" } }).catch((e: Error) => mark(`route failed: ${e.message}`));
  mark("route {region:'Zürich ' (non-ASCII, trailing space)} after the tools/list above");
  await client.callTool({ name: "route", arguments: { region: "Zürich ", text: "b" } }).catch((e: Error) => mark(`route failed: ${e.message}`));
  mark("resources/read mcp2://hello");
  await client.readResource({ uri: "mcp2://hello" });
  mark("prompts/get greet");
  await client.getPrompt({ name: "greet", arguments: { name: "Bob" } });
  mark("progress {steps:3, ms:100} with onprogress (→ progressToken) and _meta logLevel (→ notifications/message)");
  let n = 0;
  await client.callTool({ name: "progress", arguments: { steps: 3, ms: 100 }, _meta: LOGLEVEL }, { onprogress: () => n++ });
  mark(`(progress callbacks seen by the client before the result resolved: ${n})`);
  mark("log {message} WITHOUT _meta logLevel (2026-07-28: the server must not send notifications/message)");
  await client.callTool({ name: "log", arguments: { message: "not sent" } });
  mark("ask (elicitation)");
  await client.callTool({ name: "ask", arguments: { question: "Your favourite number?" } });
  mark("sample (sampling)");
  await client.callTool({ name: "sample", arguments: { prompt: "Say hi" } });
  if (opts.listen !== false && client.getProtocolEra() === "modern") {
    mark("subscriptions/listen {toolsListChanged, resourceSubscriptions:[mcp2://hello]} then touch");
    const sub = await client.listen({ toolsListChanged: true, resourceSubscriptions: ["mcp2://hello"] });
    await client.callTool({ name: "touch", arguments: {} });
    await sleep(300);
    mark("subscription close()");
    await sub.close();
    await sleep(200);
  }
  mark("wait_cancel {ms:5000}, aborted after 300 ms (AbortSignal)");
  const ac = new AbortController();
  const p = client.callTool({ name: "wait_cancel", arguments: { ms: 5000 } }, { signal: ac.signal }).catch(() => undefined);
  await sleep(300);
  ac.abort();
  await p;
  await sleep(300);
  if (opts.big) {
    mark("big {mb: 0.001}");
    await client.callTool({ name: "big", arguments: { mb: 0.001 } });
  }
  mark("close");
}

// ---------------------------------------------------------------------------------------------
// stdio through the tee

async function stdioSection(title: string, era: string, mode: Mode, doActions: boolean): Promise<void> {
  const log = join(dir, `stdio-${era}-${mode}.log`);
  writeFileSync(log, "");
  const mark = (s: string) => appendFileSync(log, `=== ${s}\n`);
  mark(`connect (mode ${mode})`);
  let note = "";
  try {
    const c = await connectStdio(
      {
        command: process.execPath,
        args: [TEE, "--log", log, "--max", "1500", "--", process.execPath, SERVER, "--stdio", "--era", era],
        env: { PATH: process.env.PATH ?? "", MCP2_CANCEL_LOG: join(dir, "cancel.log") },
      },
      { mode, probeTimeoutMs: 5000 },
    );
    note = `negotiated ${c.client.getNegotiatedProtocolVersion()} (${c.client.getProtocolEra()})`;
    if (doActions) await actions(c.client, mark);
    else {
      mark("echo");
      await c.client.callTool({ name: "echo", arguments: { message: "hi" } });
    }
    await c.close();
  } catch (e) {
    note = `connect failed: ${(e as Error).constructor.name} ${(e as { code?: unknown }).code ?? ""}: ${(e as Error).message}`;
  }
  await sleep(300);
  md(`### ${title}\n\nResult: ${note}\n\n\`\`\`\n${readFileSync(log, "utf8")}\`\`\`\n`);
}

// ---------------------------------------------------------------------------------------------
// HTTP through a logging fetch

function loggingFetch(lines: string[], t0: number) {
  const cut = (s: string, n = 1500) => (s.length > n ? `${s.slice(0, n)}…[+${s.length - n}]` : s);
  let seq = 0;
  return async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const n = ++seq;
    const h = new Headers(init?.headers);
    const hs: string[] = [];
    h.forEach((v, k) => hs.push(`    ${k}: ${v}`));
    const body = typeof init?.body === "string" ? init.body : init?.body === undefined || init.body === null ? "" : "<non-string body>";
    lines.push(`${Date.now() - t0} #${n} → ${init?.method ?? "GET"} ${String(url)}\n${hs.join("\n")}${body ? `\n    body: ${cut(body)}` : ""}`);
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (e) {
      lines.push(`${Date.now() - t0} #${n} ✗ fetch threw ${(e as Error).name}: ${(e as Error).message}`);
      throw e;
    }
    const rh: string[] = [];
    res.headers.forEach((v, k) => rh.push(`    ${k}: ${v}`));
    lines.push(`${Date.now() - t0} #${n} ← ${res.status} ${res.statusText}\n${rh.join("\n")}`);
    if (res.body === null) return res;
    const dec = new TextDecoder();
    const logged = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          lines.push(`${Date.now() - t0} #${n} ← body chunk: ${cut(JSON.stringify(dec.decode(chunk, { stream: true })))}`);
          ctl.enqueue(chunk);
        },
        flush() {
          lines.push(`${Date.now() - t0} #${n} ← body end`);
        },
      }),
    );
    return new Response(logged, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

async function startHttp(era: string, extra: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [SERVER, "--http", "0", "--era", era, ...extra], {
    env: { PATH: process.env.PATH ?? "", MCP2_CANCEL_LOG: join(dir, "cancel.log") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("server did not start")), 10_000);
    child.stdout!.once("data", (d: Buffer) => {
      clearTimeout(t);
      resolve(Number(String(d).trim().split(" ")[1]));
    });
  });
  return { url: `http://127.0.0.1:${port}/mcp`, child };
}

async function httpSection(title: string, era: string, mode: Mode, doActions: boolean, extra: string[] = []): Promise<void> {
  const { url, child } = await startHttp(era, extra);
  const lines: string[] = [];
  const t0 = Date.now();
  const mark = (s: string) => lines.push(`=== ${s}`);
  mark(`connect (mode ${mode})`);
  let note = "";
  try {
    const c = await connectHttp(url, { mode, fetch: loggingFetch(lines, t0), probeTimeoutMs: 5000 });
    note = `negotiated ${c.client.getNegotiatedProtocolVersion()} (${c.client.getProtocolEra()})`;
    if (doActions) await actions(c.client, mark, { big: true });
    else {
      mark("echo");
      await c.client.callTool({ name: "echo", arguments: { message: "hi" } });
      mark("close");
    }
    await c.close();
  } catch (e) {
    note = `connect failed: ${(e as Error).constructor.name} ${(e as { code?: unknown }).code ?? ""}: ${(e as Error).message}`;
  }
  await sleep(300);
  child.kill("SIGTERM");
  md(`### ${title}\n\nResult: ${note}\n\n\`\`\`\n${lines.join("\n")}\n\`\`\`\n`);
}

// ---------------------------------------------------------------------------------------------
// HTTP, hand-built requests (what the server answers to what a proxy might forward)

const ENVELOPE = (v = "2026-07-28") => ({
  "io.modelcontextprotocol/protocolVersion": v,
  "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
});

async function rawSection(title: string, era: string, extra: string[] = []): Promise<void> {
  const { url, child } = await startHttp(era, extra);
  const lines: string[] = [];
  const H = (m: string, name?: string, v = "2026-07-28"): Record<string, string> => ({
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": v,
    "mcp-method": m,
    ...(name !== undefined && { "mcp-name": name }),
  });
  const call = (name: string, args: unknown, id: number | string = 1, v = "2026-07-28") =>
    JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: ENVELOPE(v) } });
  const cases: Array<[string, RequestInit]> = [
    ["tools/call echo, all headers right", { method: "POST", headers: H("tools/call", "echo"), body: call("echo", { message: "hi" }) }],
    ["tools/call echo, Mcp-Name says 'other'", { method: "POST", headers: H("tools/call", "other"), body: call("echo", { message: "hi" }) }],
    [
      "tools/call echo, no Mcp-Method / Mcp-Name headers",
      { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28" }, body: call("echo", { message: "hi" }) },
    ],
    [
      "tools/call echo, no MCP-Protocol-Version header (body envelope present)",
      {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-method": "tools/call", "mcp-name": "echo" },
        body: call("echo", { message: "hi" }),
      },
    ],
    ["tools/call echo, header and envelope both 2099-01-01", { method: "POST", headers: H("tools/call", "echo", "2099-01-01"), body: call("echo", { message: "hi" }, 1, "2099-01-01") }],
    [
      "tools/call echo, header 2026-07-28 but no _meta envelope",
      { method: "POST", headers: H("tools/call", "echo"), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { message: "hi" } } }) },
    ],
    ["tools/call route without Mcp-Param-Region", { method: "POST", headers: H("tools/call", "route"), body: call("route", { region: "eu", text: "t" }) }],
    ["tools/call route with Mcp-Param-Region: eu", { method: "POST", headers: { ...H("tools/call", "route"), "mcp-param-region": "eu" }, body: call("route", { region: "eu", text: "t" }) }],
    [
      "tools/call route with Mcp-Param-Region: us (body says eu)",
      { method: "POST", headers: { ...H("tools/call", "route"), "mcp-param-region": "us" }, body: call("route", { region: "eu", text: "t" }) },
    ],
    ["tools/call of an unknown tool", { method: "POST", headers: H("tools/call", "nope"), body: call("nope", {}) }],
    ["unknown method foo/bar", { method: "POST", headers: H("foo/bar"), body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "foo/bar", params: { _meta: ENVELOPE() } }) }],
    [
      "tools/call progress with progressToken (SSE answer, auto mode)",
      {
        method: "POST",
        headers: H("tools/call", "progress"),
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "progress", arguments: { steps: 2, ms: 20 }, _meta: { ...ENVELOPE(), progressToken: "tok-1" } } }),
      },
    ],
    [
      "notification POST notifications/cancelled (unknown id)",
      {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28" },
        body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 99, _meta: ENVELOPE() } }),
      },
    ],
    [
      "server/discover with Content-Type text/plain",
      { method: "POST", headers: { ...H("server/discover"), "content-type": "text/plain" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "server/discover", params: { _meta: ENVELOPE() } }) },
    ],
    ["GET /mcp with MCP-Protocol-Version 2026-07-28", { method: "GET", headers: { accept: "text/event-stream", "mcp-protocol-version": "2026-07-28" } }],
    ["DELETE /mcp", { method: "DELETE", headers: { "mcp-protocol-version": "2026-07-28" } }],
    [
      "initialize (2025) with no MCP-Protocol-Version header",
      {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
      },
    ],
    [
      "server/discover without envelope and without 2026 headers (claim-less)",
      { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "server/discover" }) },
    ],
  ];
  for (const [what, init] of cases) {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) }).catch((e: Error) => e);
    if (res instanceof Error) {
      lines.push(`--- ${what}\n    ✗ ${res.message}`);
      continue;
    }
    const body = await res.text().catch((e: Error) => `<${e.message}>`);
    const cut = body.length > 700 ? `${body.slice(0, 700)}…` : body;
    lines.push(
      `--- ${what}\n    → ${init.method} ${JSON.stringify(init.headers)}\n    ← ${res.status} content-type=${res.headers.get("content-type")} mcp-session-id=${res.headers.get("mcp-session-id")}\n    ${JSON.stringify(cut)}`,
    );
  }
  child.kill("SIGTERM");
  md(`### ${title}\n\n\`\`\`\n${lines.join("\n")}\n\`\`\`\n`);
}

async function main(): Promise<void> {
  const target = process.argv[2] ?? "/tmp/mcp2-wire.raw.md";
  md(`# MCP 2026-07-28 wire transcript (v2 TypeScript SDK 2.4)\n\nGenerated ${new Date().toISOString()} by test/support/mcp2/transcript.ts.\n`);
  md("## stdio (through tee.js: `<ms> <tee pid> C>S|S>C <line>`; `===` lines are the script's markers)\n");
  await stdioSection("stdio: pin 2026-07-28 client → dual server", "dual", "pin", true);
  await stdioSection("stdio: auto client → dual server", "dual", "auto", false);
  await stdioSection("stdio: auto client → legacy server (fallback)", "legacy", "auto", true);
  await stdioSection("stdio: pin client → legacy server (fails)", "legacy", "pin", false);
  await stdioSection("stdio: legacy (2025) v2 client → modern-only server (fails)", "modern", "legacy", false);
  md("## Streamable HTTP (through a logging fetch given to the client transport)\n");
  await httpSection("HTTP: pin 2026-07-28 client → dual server", "dual", "pin", true);
  await httpSection("HTTP: auto client → dual server", "dual", "auto", false);
  await httpSection("HTTP: auto client → legacy server (fallback)", "legacy", "auto", true);
  await httpSection("HTTP: pin client → legacy server (fails)", "legacy", "pin", false);
  await httpSection("HTTP: legacy (2025) v2 client → modern-only server (fails)", "modern", "legacy", false);
  await httpSection("HTTP: pin client → dual server with --response-mode sse", "dual", "pin", false, ["--response-mode", "sse"]);
  md("## Streamable HTTP, hand-built requests\n");
  await rawSection("raw requests → dual server (2025 traffic to the sessionful legacy wiring)", "dual");
  await rawSection("raw requests → modern-only server", "modern");
  await rawSection("raw requests → dual server with the SDK-default stateless legacy fallback", "dual", ["--http-legacy", "stateless"]);
  await rawSection("raw requests → legacy server", "legacy");
  writeFileSync(target, out.join("\n"));
  process.stdout.write(`wrote ${target}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
