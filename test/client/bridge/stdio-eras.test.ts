/**
 * `bridge --stdio` is era-transparent: the v2 SDK client (pinned to 2026-07-28 and in `auto`)
 * reaches 2026-07-28 through the bridge, `serve` (dev provider, in-process) and the v2 server, as
 * an HTTP upstream and as a stdio child; the SDK 1.x client keeps the legacy era, server-to-client
 * sampling and elicitation included; and the remote's JSON-RPC errors reach the desktop client with
 * their own code, message, data and id. The v2 stdio client spawns the bridge twice in pin and auto
 * mode (a sibling for the server/discover probe, then the session's), so every connect below also
 * shows the bridge tolerating that.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Client, SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import { connectStdio, connectV1Stdio, ELICIT_ANSWER, eraOf, type Mode, MODERN, negotiatedVersion, SAMPLE_PREFIX, type Seen, type StdioParams } from "../../support/mcp2/client.js";
import { type HttpServer, SERVER_JS, startHttpServer } from "../../support/mcp2/spawn.js";
import { CLI } from "../../support/vectors.js";
import { sleep, tempDir, waitFor, within } from "../../support/wait.js";
import { policyDoc, type Served, startDevServe } from "../harness.js";

const dir = tempDir("amcp-bridge-eras-");

/**
 * The bridge as a desktop client would start it. The policy checks the certificate's own evidence
 * only: each connect spawns two bridges and each concurrent stream opens its own verified
 * connection, and fresh evidence per connection would spend serve's per-client share of quotes
 * (a busy remote is another matter; bridge.test.ts covers exporter freshness).
 */
function bridgeParams(s: Served): StdioParams {
  const policy = join(s.dir, "bridge-policy.json");
  writeFileSync(policy, JSON.stringify(policyDoc(s, { freshness: "certificate" })));
  return { command: process.execPath, args: [CLI, "bridge", "--remote", `${s.base}/mcp`, "--policy", policy, "--stdio"], env: { PATH: process.env.PATH ?? "" } };
}

const textOf = (r: { content?: unknown }): string => {
  const c = (r.content as Array<{ type: string; text?: string }> | undefined)?.[0];
  assert.ok(c && c.type === "text", `expected a text block, got ${JSON.stringify(r).slice(0, 300)}`);
  return c.text ?? "";
};

const linesOf = (file: string): string[] => {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
};

interface Row {
  client: Client;
  seen: Seen;
  cancelLog: string;
}

/** What a modern client must get through the bridge, as it does directly (test/e2e/mcp2-direct.test.ts). */
function modernCases(row: () => Row): void {
  it("negotiates 2026-07-28 through the bridge (server/discover passed through)", () => {
    const { client } = row();
    assert.equal(negotiatedVersion(client), MODERN);
    assert.equal(eraOf(client), "modern");
    assert.equal(client.getServerVersion()?.name, "mcp2-test-server");
  });

  it("echo, resources/read, prompts/get", async () => {
    const { client } = row();
    assert.equal(textOf(await within(client.callTool({ name: "echo", arguments: { message: "hello 2026" } }), 10_000, "echo")), "hello 2026");
    const r = await within(client.readResource({ uri: "mcp2://hello" }), 10_000, "read");
    assert.equal((r.contents[0] as { text?: string }).text, "hello from mcp2");
    const p = await within(client.getPrompt({ name: "greet", arguments: { name: "Bob" } }), 10_000, "prompt");
    assert.deepEqual(p.messages[0]?.content, { type: "text", text: "Hello, Bob!" });
  });

  it("progress notifications arrive while the call runs", async () => {
    const steps = 5;
    const progress: number[] = [];
    const r = await within(row().client.callTool({ name: "progress", arguments: { steps, ms: 100 } }, { onprogress: (p) => progress.push(p.progress), timeout: 20_000 }), 20_000, "progress");
    assert.equal(textOf(r), `progress done: ${steps}`);
    // The SDK client can drop the last notification read in one chunk with the result (mcp2-wire.md §2).
    assert.ok(progress.length >= steps - 1, `progress before the result: ${progress.length} of ${steps}`);
    assert.equal(progress[0], 1);
  });

  it("MRTR elicitation and sampling round trips", async () => {
    const { client, seen } = row();
    const before = seen.elicitations.length;
    assert.equal(textOf(await within(client.callTool({ name: "ask", arguments: { question: "Through the bridge?" } }), 10_000, "ask")), `answer: ${ELICIT_ANSWER}`);
    assert.equal(seen.elicitations.length, before + 1);
    assert.equal(textOf(await within(client.callTool({ name: "sample", arguments: { prompt: "Say hi" } }), 10_000, "sample")), `sampled: ${SAMPLE_PREFIX}Say hi`);
  });

  it("x-mcp-header: route with a non-ASCII region (Mcp-Param-Region as base64)", async () => {
    const r = await within(row().client.callTool({ name: "route", arguments: { region: "Zürich ", text: "b" } }), 10_000, "route");
    assert.equal(textOf(r), "Zürich : b");
  });

  it("subscriptions/listen delivers list_changed and resources/updated; close() ends it", async () => {
    const { client } = row();
    const got: string[] = [];
    client.setNotificationHandler("notifications/tools/list_changed", () => void got.push("tools"));
    client.setNotificationHandler("notifications/resources/updated", () => void got.push("resource"));
    const sub = await within(client.listen({ toolsListChanged: true, resourceSubscriptions: ["mcp2://hello"] }), 10_000, "listen ack");
    try {
      await within(client.callTool({ name: "touch", arguments: {} }), 10_000, "touch");
      await waitFor(() => got.includes("tools") && got.includes("resource"), 10_000, "list_changed and resources/updated");
    } finally {
      await within(sub.close(), 5_000, "subscription close");
    }
    assert.equal(await within(sub.closed, 5_000, "closed"), "local");
  });

  it("cancelling a call (AbortSignal) reaches the server", async () => {
    const { client, cancelLog } = row();
    const seen0 = linesOf(cancelLog).length;
    const ac = new AbortController();
    const settled = client.callTool({ name: "wait_cancel", arguments: { ms: 30_000 } }, { signal: ac.signal, timeout: 40_000 }).then(
      () => "resolved",
      (e: Error) => e,
    );
    await waitFor(
      () =>
        linesOf(cancelLog)
          .slice(seen0)
          .some((l) => l.startsWith("started ")),
      10_000,
      "wait_cancel started",
    );
    const id = linesOf(cancelLog)
      .slice(seen0)
      .find((l) => l.startsWith("started "))!
      .slice("started ".length);
    ac.abort();
    assert.ok((await within(settled, 5_000, "the aborted call settles")) instanceof Error);
    await waitFor(() => linesOf(cancelLog).includes(`cancelled ${id}`), 10_000, `cancelled ${id} in the cancel log`);
  });
}

/** The bridge with raw stdin/stdout lines: for exact assertions on what the desktop client reads. */
/** modernCases for a v2 client through `bridge --stdio` to `served`, pinned and auto-negotiating. */
function bridgedModernCases(served: () => Served, cancelLog: string): void {
  for (const mode of ["pin", "auto"] as Mode[]) {
    describe(`v2 client, ${mode}`, () => {
      let row: Row | undefined;
      let close = async (): Promise<void> => {};
      before(async () => {
        const c = await within(connectStdio(bridgeParams(served()), { mode, timeoutMs: 30_000 }), 40_000, `connect (${mode}) through the bridge`);
        row = { client: c.client, seen: c.seen, cancelLog };
        close = c.close;
      });
      after(() => within(close(), 10_000, "close").catch(() => {}));
      modernCases(() => row!);
    });
  }
}

function rawBridge(p: StdioParams): { send(m: object): void; answer(id: unknown): Promise<Record<string, unknown>>; stderr(): string; stop(): Promise<void> } {
  const child: ChildProcess = spawn(p.command, p.args ?? [], { stdio: ["pipe", "pipe", "pipe"], env: p.env });
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString("utf8")));
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString("utf8");
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    send: (m) => void child.stdin!.write(`${JSON.stringify({ jsonrpc: "2.0", ...m })}\n`),
    answer: (id) =>
      within(
        (async () => {
          for (;;) {
            const m = lines.find((l) => l.id === id && !("method" in l));
            if (m) return m;
            await sleep(20);
          }
        })(),
        15_000,
        `answer to ${JSON.stringify(id)} (stderr: ${err})`,
      ),
    stderr: () => err,
    stop: async () => {
      child.stdin!.end();
      await within(exited, 10_000, "bridge exit").catch(() => child.kill("SIGKILL"));
    },
  };
}

const ENVELOPE = { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

describe("bridge --stdio → serve → v2 server over HTTP (--era dual)", { timeout: 180_000 }, () => {
  const cancelLog = join(dir, "cancel-http.log");
  let http: HttpServer | undefined;
  let served: Served | undefined;
  before(async () => {
    writeFileSync(cancelLog, "");
    http = await startHttpServer("dual", { env: { MCP2_CANCEL_LOG: cancelLog } });
    served = await startDevServe(`upstream: { url: "http://127.0.0.1:${http.port}" }\n`);
  });
  after(async () => {
    await served?.close();
    await http?.stop();
  });

  bridgedModernCases(() => served!, cancelLog);

  it("the remote's JSON-RPC errors keep their code, message, data and id: -32020 (400), -32601 (404), -32602 (200)", async () => {
    const b = rawBridge(bridgeParams(served!));
    try {
      // Before any tools/list the bridge knows no x-mcp-header, so the server sees no Mcp-Param-Region.
      b.send({ id: "r1", method: "tools/call", params: { name: "route", arguments: { region: "eu", text: "t" }, _meta: ENVELOPE } });
      const mismatch = (await b.answer("r1")) as { error: { code: number; message: string; data?: { mismatch?: { header?: string } } } };
      assert.equal(mismatch.error.code, -32020);
      assert.match(mismatch.error.message, /Mcp-Param-Region header is absent/);
      assert.equal(mismatch.error.data?.mismatch?.header, "Mcp-Param-Region");

      b.send({ id: 7, method: "foo/bar", params: { _meta: ENVELOPE } });
      assert.deepEqual(await b.answer(7), { jsonrpc: "2.0", id: 7, error: { code: -32601, message: "Method not found" } });

      b.send({ id: 8, method: "tools/call", params: { name: "nope", arguments: {}, _meta: ENVELOPE } });
      assert.equal(((await b.answer(8)) as { error: { code: number } }).error.code, -32602);

      // Once a tools/list has passed through, the same call carries the header and succeeds.
      b.send({ id: 9, method: "tools/list", params: { _meta: ENVELOPE } });
      assert.ok(((await b.answer(9)) as { result: { tools: { name: string }[] } }).result.tools.some((t) => t.name === "route"));
      b.send({ id: 10, method: "tools/call", params: { name: "route", arguments: { region: "eu", text: "t" }, _meta: ENVELOPE } });
      assert.match(JSON.stringify(await b.answer(10)), /eu: t/);
    } finally {
      await b.stop();
    }
  });

  it("legacy: the SDK 1.x client initializes; sampling and elicitation requested during a tool call work", async () => {
    const c = await within(connectV1Stdio({ ...bridgeParams(served!) }), 30_000, "1.x connect through the bridge");
    try {
      assert.equal(c.client.getServerVersion()?.name, "mcp2-test-server");
      assert.equal(textOf((await within(c.client.callTool({ name: "echo", arguments: { message: "from 1.x" } }), 10_000, "echo")) as { content?: unknown }), "from 1.x");
      const a = await within(c.client.callTool({ name: "ask", arguments: { question: "Legacy?" } }), 10_000, "ask");
      assert.equal(textOf(a as { content?: unknown }), `answer: ${ELICIT_ANSWER}`);
      assert.equal(c.seen.elicitations.length, 1, "the 1.x client answered one elicitation/create");
      const s = await within(c.client.callTool({ name: "sample", arguments: { prompt: "Say hi" } }), 10_000, "sample");
      assert.equal(textOf(s as { content?: unknown }), `sampled: ${SAMPLE_PREFIX}Say hi`);
      assert.equal(c.seen.samplings.length, 1, "the 1.x client answered one sampling/createMessage");
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
  });
});

describe("bridge --stdio → serve → legacy-only v2 server over HTTP", { timeout: 120_000 }, () => {
  let http: HttpServer | undefined;
  let served: Served | undefined;
  before(async () => {
    http = await startHttpServer("legacy");
    served = await startDevServe(`upstream: { url: "http://127.0.0.1:${http.port}" }\n`);
  });
  after(async () => {
    await served?.close();
    await http?.stop();
  });

  it("auto: the probe's 400 reaches the client as its error, the client falls back to 2025 and elicitation works", async () => {
    const c = await within(connectStdio(bridgeParams(served!), { mode: "auto", timeoutMs: 30_000 }), 40_000, "auto connect through the bridge");
    try {
      assert.equal(eraOf(c.client), "legacy");
      const a = await within(c.client.callTool({ name: "ask", arguments: { question: "Fallen back?" } }), 10_000, "ask");
      assert.equal(textOf(a), `answer: ${ELICIT_ANSWER}`);
      assert.equal(c.seen.elicitations.length, 1, "answered as a 2025 elicitation/create request");
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
  });

  it("pin: fails exactly as it does without the proxy (ERA_NEGOTIATION_FAILED)", async () => {
    const err = await within(
      connectStdio(bridgeParams(served!), { mode: "pin", timeoutMs: 30_000 }).then(
        async (c) => void (await c.close()),
        (e: unknown) => e,
      ),
      40_000,
      "pinned connect",
    );
    assert.ok(err instanceof SdkError, `an SdkError, got ${String(err)}`);
    assert.equal(err.code, SdkErrorCode.EraNegotiationFailed);
    assert.match(err.message, /did not offer pinned protocol version 2026-07-28 via server\/discover/);
  });
});

describe("bridge --stdio → serve → v2 server as a stdio child (--era dual)", { timeout: 180_000 }, () => {
  let served: Served | undefined;
  const cancelLog = join(dir, "cancel-stdio.log");
  before(async () => {
    writeFileSync(cancelLog, "");
    served = await startDevServe(`upstream: { command: ["${process.execPath}", "${SERVER_JS}", "--stdio", "--era", "dual"], env: { MCP2_CANCEL_LOG: "${cancelLog}" } }\n`);
  });
  after(() => served?.close());
  bridgedModernCases(() => served!, cancelLog);
});
