/**
 * The MCP 2026-07-28 baseline, no proxy: the v2 SDK client against the v2 SDK server
 * (test/support/mcp2), over a stdio child and over HTTP on 127.0.0.1, in `pin` 2026-07-28 and
 * `auto` negotiation. What the proxy will have to carry unchanged. Plus the SDK 1.x client
 * against the dual-era server, and how a pinned 2026-only client fails against a 2025-only server.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { SdkError, SdkErrorCode, type Client } from "@modelcontextprotocol/client";
import { connectHttp, connectStdio, connectV1Http, connectV1Stdio, negotiatedVersion, eraOf, ELICIT_ANSWER, SAMPLE_PREFIX, MODERN, type Seen, type Mode } from "../support/mcp2/client.js";
import { notificationsAfterTouch, progressArrives } from "../support/mcp2/checks.js";
import { startHttpServer, stdioServer, within, waitFor, SERVER_JS, type HttpServer } from "../support/mcp2/spawn.js";
import { tempDir } from "../support/wait.js";

const dir = tempDir("mcp2-direct-");
after(() => rmSync(dir, { recursive: true, force: true }));

const textOf = (r: { content?: unknown }): string => {
  const c = (r.content as Array<{ type: string; text?: string }> | undefined)?.[0];
  assert.ok(c && c.type === "text", `expected a text block, got ${JSON.stringify(r).slice(0, 300)}`);
  return c.text ?? "";
};

const cancelLines = (file: string): string[] => {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
};

type Transport = "stdio" | "http";

for (const transport of ["stdio", "http"] as Transport[]) {
  for (const mode of ["pin", "auto"] as Mode[]) {
    describe(`mcp2 direct: ${transport} × ${mode} → dual server`, { timeout: 180_000 }, () => {
      const cancelLog = join(dir, `cancel-${transport}-${mode}.log`);
      let client: Client;
      let seen: Seen;
      let close: () => Promise<void> = async () => {};
      let http: HttpServer | undefined;

      before(async () => {
        writeFileSync(cancelLog, "");
        const env = { MCP2_CANCEL_LOG: cancelLog };
        if (transport === "stdio") {
          const c = await within(connectStdio(stdioServer("dual", env), { mode }), 30_000, "stdio connect");
          ({ client, seen } = c);
          close = c.close;
        } else {
          http = await startHttpServer("dual", { env });
          const c = await within(connectHttp(http.url, { mode }), 30_000, "http connect");
          ({ client, seen } = c);
          close = c.close;
        }
      });

      after(async () => {
        await within(close(), 10_000, "close").catch(() => {});
        await http?.stop();
      });

      it("negotiates 2026-07-28 (modern era, via server/discover)", () => {
        assert.equal(negotiatedVersion(client), MODERN);
        assert.equal(eraOf(client), "modern");
        assert.deepEqual(client.getDiscoverResult()?.supportedVersions, [MODERN]);
        assert.equal(client.getServerVersion()?.name, "mcp2-test-server");
      });

      it("echo", async () => {
        const r = await within(client.callTool({ name: "echo", arguments: { message: "hello 2026" } }), 10_000, "echo");
        assert.equal(textOf(r), "hello 2026");
      });

      it("progress notifications arrive while the call runs", async () => {
        await progressArrives(client, 5, 20_000);
      });

      it("elicitation round trip (MRTR: input_required, then the retry with inputResponses)", async () => {
        const before = seen.elicitations.length;
        const r = await within(client.callTool({ name: "ask", arguments: { question: "Your favourite number?" } }), 10_000, "ask");
        assert.equal(textOf(r), `answer: ${ELICIT_ANSWER}`);
        assert.equal(seen.elicitations.length, before + 1);
        assert.equal(seen.elicitations.at(-1)?.message, "Your favourite number?");
      });

      it("sampling round trip (MRTR)", async () => {
        const r = await within(client.callTool({ name: "sample", arguments: { prompt: "Say hi" } }), 10_000, "sample");
        assert.equal(textOf(r), `sampled: ${SAMPLE_PREFIX}Say hi`);
      });

      it("resources/read", async () => {
        const r = await within(client.readResource({ uri: "mcp2://hello" }), 10_000, "read");
        const c = r.contents[0] as { uri: string; text?: string };
        assert.equal(c.uri, "mcp2://hello");
        assert.equal(c.text, "hello from mcp2");
      });

      it("prompts/get", async () => {
        const r = await within(client.getPrompt({ name: "greet", arguments: { name: "Bob" } }), 10_000, "prompt");
        assert.deepEqual(r.messages[0]?.content, { type: "text", text: "Hello, Bob!" });
      });

      it("subscriptions/listen delivers tools/list_changed and resources/updated after touch", async () => {
        const { got, sub } = await notificationsAfterTouch(client, 10_000);
        assert.equal((got.find((n) => n.method === "notifications/resources/updated")?.params as { uri?: string } | undefined)?.uri, "mcp2://hello");
        const tools = await within(client.listTools(undefined, { cacheMode: "refresh" }), 10_000, "tools/list");
        assert.ok(
          tools.tools.some((t) => t.name === "touched"),
          "the tool list changed",
        );
        assert.equal(await within(sub.closed, 5_000, "closed"), "local");
      });

      it("cancelling a call (AbortSignal) reaches the server", async () => {
        const ac = new AbortController();
        const call = client.callTool({ name: "wait_cancel", arguments: { ms: 30_000 } }, { signal: ac.signal, timeout: 40_000 });
        const settled = call.then(
          () => "resolved",
          (e: Error) => e,
        );
        await waitFor(() => cancelLines(cancelLog).some((l) => l.startsWith("started ")), 10_000, "wait_cancel started");
        const id = cancelLines(cancelLog)
          .find((l) => l.startsWith("started "))!
          .slice("started ".length);
        ac.abort();
        const outcome = await within(settled, 5_000, "aborted call settles");
        assert.ok(outcome instanceof Error, `the call rejects (got ${String(outcome)})`);
        await waitFor(() => cancelLines(cancelLog).includes(`cancelled ${id}`), 5_000, `cancelled ${id} in the cancel log`);
      });

      it("big {mb: 20} arrives whole", { timeout: 90_000 }, async () => {
        const r = await within(client.callTool({ name: "big", arguments: { mb: 20 } }, { timeout: 80_000 }), 85_000, "big");
        const t = textOf(r);
        assert.equal(t.length, 20 * 1024 * 1024);
        assert.ok(/^x+$/.test(t));
      });
    });
  }
}

describe("mcp2 direct: SDK 1.x client (legacy) → dual server", { timeout: 60_000 }, () => {
  for (const transport of ["stdio", "http"] as Transport[]) {
    it(`${transport}: echo and elicitation through the server-to-client request`, async () => {
      let http: HttpServer | undefined;
      try {
        let c;
        if (transport === "stdio") c = await within(connectV1Stdio(stdioServer("dual")), 20_000, "v1 stdio connect");
        else {
          http = await startHttpServer("dual");
          c = await within(connectV1Http(http.url), 20_000, "v1 http connect");
        }
        try {
          assert.equal(c.client.getServerVersion()?.name, "mcp2-test-server");
          const e = await within(c.client.callTool({ name: "echo", arguments: { message: "from 1.x" } }), 10_000, "echo");
          assert.equal(textOf(e as { content?: unknown }), "from 1.x");
          const a = await within(c.client.callTool({ name: "ask", arguments: { question: "Legacy?" } }), 10_000, "ask");
          assert.equal(textOf(a as { content?: unknown }), `answer: ${ELICIT_ANSWER}`);
          assert.equal(c.seen.elicitations.length, 1, "the 1.x client answered one elicitation/create request");
          assert.equal(c.seen.elicitations[0]?.message, "Legacy?");
        } finally {
          await within(c.close(), 10_000, "close").catch(() => {});
        }
      } finally {
        await http?.stop();
      }
    });
  }
});

/** The first line a stdio server writes after `line` (bounded). */
async function stdioFirstAnswer(era: "legacy" | "modern" | "dual", line: string): Promise<unknown> {
  const child = spawn(process.execPath, [SERVER_JS, "--stdio", "--era", era], { stdio: ["pipe", "pipe", "ignore"], env: { PATH: process.env.PATH ?? "" } });
  try {
    const answer = new Promise<unknown>((resolve, reject) => {
      let buf = "";
      child.stdout.on("data", (d: Buffer) => {
        buf += d.toString();
        const i = buf.indexOf("\n");
        if (i >= 0) resolve(JSON.parse(buf.slice(0, i)));
      });
      child.once("exit", (code) => reject(new Error(`server exited (${code}) before answering`)));
    });
    child.stdin.write(line + "\n");
    return await within(answer, 10_000, "stdio answer");
  } finally {
    child.kill("SIGKILL");
  }
}

const DISCOVER = JSON.stringify({
  jsonrpc: "2.0",
  id: "server-discover-probe-1",
  method: "server/discover",
  params: {
    _meta: {
      "io.modelcontextprotocol/protocolVersion": MODERN,
      "io.modelcontextprotocol/clientInfo": { name: "probe", version: "1" },
      "io.modelcontextprotocol/clientCapabilities": {},
    },
  },
});

describe("mcp2 direct: pinned 2026-07-28 client → legacy-only server fails", { timeout: 60_000 }, () => {
  const PIN_FAILURE = /^Version negotiation failed: the server did not offer pinned protocol version 2026-07-28 via server\/discover \(no fallback in pin mode\)$/;

  it("stdio: the legacy server answers server/discover with -32601 Method not found", async () => {
    assert.deepEqual(await stdioFirstAnswer("legacy", DISCOVER), { jsonrpc: "2.0", id: "server-discover-probe-1", error: { code: -32601, message: "Method not found" } });
  });

  it("stdio: connect() rejects with SdkError ERA_NEGOTIATION_FAILED", async () => {
    const err = await within(
      connectStdio(stdioServer("legacy"), { mode: "pin" }).then(
        async (c) => {
          await c.close();
          return undefined;
        },
        (e: unknown) => e,
      ),
      30_000,
      "pinned stdio connect",
    );
    assert.ok(err instanceof SdkError, `an SdkError, got ${String(err)}`);
    assert.equal(err.code, SdkErrorCode.EraNegotiationFailed);
    assert.equal(err.code, "ERA_NEGOTIATION_FAILED");
    assert.match(err.message, PIN_FAILURE);
  });

  it("http: the legacy server answers the server/discover POST 400 with a non-modern JSON-RPC error", async () => {
    const http = await startHttpServer("legacy");
    try {
      const res = await fetch(http.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "server/discover" },
        body: DISCOVER,
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(res.status, 400);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.deepEqual(await res.json(), { jsonrpc: "2.0", error: { code: -32000, message: "Bad Request: No valid session ID provided" }, id: null });
    } finally {
      await http.stop();
    }
  });

  it("http: connect() rejects with SdkError ERA_NEGOTIATION_FAILED (same message as stdio)", async () => {
    const http = await startHttpServer("legacy");
    try {
      const err = await within(
        connectHttp(http.url, { mode: "pin" }).then(
          async (c) => {
            await c.close();
            return undefined;
          },
          (e: unknown) => e,
        ),
        30_000,
        "pinned http connect",
      );
      assert.ok(err instanceof SdkError, `an SdkError, got ${String(err)}`);
      assert.equal(err.code, SdkErrorCode.EraNegotiationFailed);
      assert.match(err.message, PIN_FAILURE);
    } finally {
      await http.stop();
    }
  });

  for (const transport of ["stdio", "http"] as Transport[]) {
    it(`${transport}: an auto client falls back to initialize (2025-11-25) instead`, async () => {
      let http: HttpServer | undefined;
      try {
        let c;
        if (transport === "stdio") c = await within(connectStdio(stdioServer("legacy"), { mode: "auto" }), 30_000, "auto stdio connect");
        else {
          http = await startHttpServer("legacy");
          c = await within(connectHttp(http.url, { mode: "auto" }), 30_000, "auto http connect");
        }
        try {
          assert.equal(negotiatedVersion(c.client), "2025-11-25");
          assert.equal(eraOf(c.client), "legacy");
          const a = await within(c.client.callTool({ name: "ask", arguments: { question: "Fallback?" } }), 10_000, "ask");
          assert.equal(textOf(a), `answer: ${ELICIT_ANSWER}`);
        } finally {
          await within(c.close(), 10_000, "close").catch(() => {});
        }
      } finally {
        await http?.stop();
      }
    });
  }
});
