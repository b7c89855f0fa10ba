/**
 * MCP 2026-07-28 end to end over the HTTP paths, real parts only: the v2 SDK client (pinned and
 * in `auto`) with `attestedFetch` as its transport's `fetch` → serve (dev provider, default
 * config) → the v2 server as an HTTP upstream, and the same through `bridge --listen`. Plus what
 * DESIGN.md §8 asks of the forwarder (every Mcp-* header forwarded, error bodies intact, a client
 * disconnect as cancellation), a quiet 60 s call under the default config, and the legacy era
 * through the bridge: a 1.x client whose tool call makes the server ask it for sampling and
 * elicitation on the GET stream.
 *
 * One upstream, one serve and one bridge for the file; the 60 s call runs while the rest does.
 */
import assert from "node:assert/strict";
import dc from "node:diagnostics_channel";
import { after, before, describe, it } from "node:test";
import type { FetchLike } from "@modelcontextprotocol/client";
import { attestedFetch, type AttestedFetch } from "../../proxy/client/connector.js";
import { ELICIT_ANSWER, MODERN, SAMPLE_PREFIX, connectHttp, connectV1Http, type Connected, type Mode } from "../support/mcp2/client.js";
import { within } from "../support/mcp2/spawn.js";
import { startPaths, textOf, v2ClientChecks, type Paths } from "./mcp2-http.js";

let paths: Paths;
const fetches: AttestedFetch[] = [];
const attested = (): AttestedFetch => {
  const f = attestedFetch(paths.policy);
  fetches.push(f);
  return f;
};

before(async () => {
  paths = await startPaths();
});
after(async () => {
  await Promise.all(fetches.map((f) => f.close().catch(() => {})));
  await paths.close();
});

/** A JSON-RPC POST as the v2 client sends it, with the 2026-07-28 headers given. */
function modernPost(headers: Record<string, string>, body: unknown): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN, ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  };
}

const envelope = { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const routeCall = (region: string) => ({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "route", arguments: { region, text: "t" }, _meta: envelope } });

/** Status, content type and body bytes of one answer. */
async function answerOf(f: typeof fetch | AttestedFetch, url: string, init: RequestInit): Promise<{ status: number; type: string | null; body: string }> {
  const r = await f(url, init);
  return { status: r.status, type: r.headers.get("content-type"), body: Buffer.from(await r.arrayBuffer()).toString("latin1") };
}

/**
 * A fetch for the 1.x client that sends its calls only once its GET stream is on the wire, as a
 * client does that opens its stream before it calls tools. The 1.x client itself opens the
 * stream in the background and calls at once, so a server that sends its requests on that stream
 * races it, with or without the proxy; what the proxy must not do is reorder the two.
 */
function streamFirst(base: FetchLike, origin: string): FetchLike {
  let getWritten: Promise<void> | undefined;
  return async (input, init) => {
    if ((init?.method ?? "GET") === "GET") {
      const ch = dc.channel("undici:client:sendHeaders");
      getWritten = within(
        new Promise<void>((resolve) => {
          const on = (m: unknown): void => {
            const { request } = m as { request: { method: string; origin: unknown } };
            if (request.method !== "GET" || String(request.origin) !== origin) return;
            ch.unsubscribe(on);
            resolve();
          };
          ch.subscribe(on);
        }),
        15_000,
        "the GET stream on the wire",
      );
      return base(input, init);
    }
    if (getWritten) await getWritten;
    return base(input, init);
  };
}

describe("MCP over HTTP: v2 client → serve → HTTP upstream (v2 server), direct and through bridge --listen", { concurrency: true, timeout: 240_000 }, () => {
  it("a quiet 60 s tool call (pinned 2026-07-28 client, attestedFetch) completes under the default config", { timeout: 100_000 }, async () => {
    const c = await within(connectHttp(paths.serveUrl, { mode: "pin", fetch: attested() }), 30_000, "connect");
    try {
      const r = await within(c.client.callTool({ name: "quiet", arguments: { ms: 60_000 } }, { timeout: 85_000 }), 90_000, "quiet 60 s");
      assert.equal(textOf(r), "quiet 60000");
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
  });

  describe("v2 clients on each path", { concurrency: false }, () => {
    for (const path of ["attestedFetch → serve", "bridge --listen → serve"] as const) {
      for (const mode of ["pin", "auto"] as Mode[]) {
        describe(`${path}, ${mode}`, () => {
          let c: Connected<unknown> | undefined;
          before(async () => {
            const fetch = path === "attestedFetch → serve" ? attested() : undefined;
            c = await within(connectHttp(path === "attestedFetch → serve" ? paths.serveUrl : paths.bridgeUrl, { mode, ...(fetch ? { fetch } : {}) }), 30_000, "connect");
          });
          after(async () => {
            await within(c?.close() ?? Promise.resolve(), 10_000, "close").catch(() => {});
          });
          v2ClientChecks(
            () => c!,
            () => paths.cancelLog,
          );
        });
      }
    }
  });

  describe("the forwarder is a byte-faithful relay (DESIGN.md §8)", () => {
    it("a header that contradicts the body gets the server's own 400 -32020, byte for byte", async () => {
      const init = () =>
        modernPost({ "mcp-method": "tools/call", "mcp-name": "other" }, { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "echo", arguments: { message: "m" }, _meta: envelope } });
      const direct = await answerOf(fetch, paths.upstream.url, init());
      const proxied = await answerOf(attested(), paths.serveUrl, init());
      assert.equal(direct.status, 400);
      assert.equal((JSON.parse(direct.body) as { error: { code: number } }).error.code, -32020);
      assert.deepEqual(proxied, direct);
    });

    it("Mcp-Param-Region reaches the server: the route tool answers with it, and a wrong one is the server's -32020 naming it", async () => {
      const f = attested();
      const ok = await answerOf(f, paths.serveUrl, modernPost({ "mcp-method": "tools/call", "mcp-name": "route", "mcp-param-region": "eu" }, routeCall("eu")));
      assert.equal(ok.status, 200);
      assert.equal((JSON.parse(ok.body) as { result: { content: Array<{ text: string }> } }).result.content[0]?.text, "eu: t");
      const wrong = () => modernPost({ "mcp-method": "tools/call", "mcp-name": "route", "mcp-param-region": "us" }, routeCall("eu"));
      const proxied = await answerOf(f, paths.serveUrl, wrong());
      assert.deepEqual(proxied, await answerOf(fetch, paths.upstream.url, wrong()));
      assert.equal(proxied.status, 400);
      assert.match(proxied.body, /Mcp-Param-Region header decodes to \\"us\\"/);
    });
  });

  describe("legacy era (SDK 1.x, sessionful server): sampling and elicitation on the GET stream, right after connect", { concurrency: false }, () => {
    for (const path of ["bridge --listen → serve", "attestedFetch → serve"] as const) {
      // One call per session, then close: the closed GET stream of one session is what used to
      // leave the bridge's connections in the state where the next session's call overtook its GET.
      it(`${path}: eight fresh sessions, each calling sample or ask at once`, async () => {
        const bridged = path === "bridge --listen → serve";
        const url = bridged ? paths.bridgeUrl : paths.serveUrl;
        const base: FetchLike = bridged ? fetch : attested();
        for (let session = 0; session < 8; session++) {
          const c = await within(connectV1Http(url, streamFirst(base, new URL(url).origin)), 20_000, "1.x connect");
          try {
            if (session % 2 === 0) {
              const s = await within(c.client.callTool({ name: "sample", arguments: { prompt: `hi ${session}` } }, undefined, { timeout: 10_000 }), 15_000, `sample, session ${session}`);
              assert.equal(textOf(s as { content?: unknown }), `sampled: ${SAMPLE_PREFIX}hi ${session}`);
              assert.equal(c.seen.samplings.length, 1);
            } else {
              const a = await within(c.client.callTool({ name: "ask", arguments: { question: "Legacy?" } }, undefined, { timeout: 10_000 }), 15_000, `ask, session ${session}`);
              assert.equal(textOf(a as { content?: unknown }), `answer: ${ELICIT_ANSWER}`);
              assert.equal(c.seen.elicitations.length, 1);
            }
          } finally {
            await within(c.close(), 10_000, "close").catch(() => {});
          }
        }
      });
    }
  });
});
