/**
 * The forwarder's deadlines and order for MCP over HTTP: no deadline on the response head unless
 * `upstream.headersTimeout` is configured (a 2026-07-28 server sends its head with the result),
 * while `upstream.idleTimeout` still cuts an upstream that never answers and is refreshed by what
 * the upstream sends before its head; and a connection given back to the pool is no longer the
 * exchange's to tear down.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { describe, it } from "node:test";
import { pino } from "pino";
import { loadConfig } from "../../../../proxy/server/config.js";
import { createForwarder } from "../../../../proxy/server/upstream/http/forward.js";
import { listen, LOOPBACK, portOf, request, shut, startFront, startSilentUpstream, startUpstream } from "../../../support/upstream.js";
import { waitFor, within } from "../../../support/wait.js";

const messageOf = (body: Buffer): string => (JSON.parse(body.toString("utf8")) as { error: { message: string } }).error.message;

describe("forwarder: the response head has no deadline of its own", () => {
  it("config: upstream.headersTimeout is unset by default and a duration when set", async () => {
    const base: [string, string][] = [
      ["attestation.provider", "dev"],
      ["upstream.url", "http://127.0.0.1:9"],
    ];
    assert.equal((await loadConfig({ sets: base })).upstream.headersTimeoutMs, null);
    assert.equal((await loadConfig({ sets: [...base, ["upstream.headersTimeout", "30s"]] })).upstream.headersTimeoutMs, 30_000);
    await assert.rejects(loadConfig({ sets: [...base, ["upstream.headersTimeout", "soon"]] }), /upstream\.headersTimeout/);
  });

  it("an upstream that accepts and never answers is cut at upstream.idleTimeout (504), its connection closed", async () => {
    const silent = await startSilentUpstream();
    const held = silent.held;
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: silent.port }, idleTimeoutMs: 300 });
    try {
      const r = await request(front.port, { path: "/mcp", method: "POST", headers: { "content-type": "application/json" } }, '{"jsonrpc":"2.0","id":1,"method":"tools/call"}');
      assert.equal(r.status, 504);
      assert.match(messageOf(r.body), /sent no data for 300 ms/);
      assert.deepEqual(front.hooks.events, ["error:timeout"]);
      await waitFor(() => held.size === 0, 2000, "the abandoned upstream connection closed");
    } finally {
      await front.close();
      await silent.close();
    }
  });

  it("interim answers (102 Processing) before a late head keep the exchange alive past idleTimeout", async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      let n = 0;
      const beat = setInterval(() => {
        if (++n < 8) return res.writeProcessing();
        clearInterval(beat);
        res.writeHead(200, { "content-type": "application/json" }).end('{"late":true}');
      }, 100);
      res.on("close", () => clearInterval(beat));
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port }, idleTimeoutMs: 350 });
    try {
      const r = await request(front.port, { path: "/mcp" });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), '{"late":true}');
      assert.deepEqual(front.hooks.events, []);
    } finally {
      await front.close();
      await up.close();
    }
  });
});

describe("forwarder: a connection back in the pool", () => {
  it("a client that leaves before its complete answer is flushed does not tear down the exchange now on that connection", async () => {
    const upstreamSockets: Record<string, net.Socket> = {};
    let answerB: (() => void) | undefined;
    const up = await startUpstream((req, res) => {
      upstreamSockets[req.url ?? ""] = req.socket;
      req.resume();
      if (req.url === "/a") res.end("a".repeat(1024));
      else answerB = () => res.end("b");
    });
    const fwd = createForwarder({ target: { kind: "http", host: LOOPBACK, port: up.port }, log: pino({ level: "silent" }) });
    let heldA: http.ServerResponse | undefined;
    let endedA = false;
    const front = http.createServer((req, res) => {
      if (req.url === "/a") {
        heldA = res;
        // The forwarder's end() of A is held back: A's answer stands for one still in the
        // client's socket buffers (a client that stopped reading), complete upstream, not finished.
        res.end = (() => {
          endedA = true;
          return res;
        }) as typeof res.end;
      }
      fwd.handle(req, res);
    });
    await listen(front);
    const a = net.connect({ host: LOOPBACK, port: portOf(front) });
    a.on("error", () => {});
    try {
      a.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
      // end() follows the release of A's connection to the pool.
      await waitFor(() => endedA, 5000, "A complete upstream");
      const b = request(portOf(front), { path: "/b" });
      await waitFor(() => answerB !== undefined, 5000, "B upstream");
      assert.equal(upstreamSockets["/b"], upstreamSockets["/a"], "B went out on A's connection");
      const closed = new Promise((r) => heldA!.once("close", r));
      a.destroy();
      await within(closed, 5000, "A's response closed");
      answerB!();
      const rb = await b;
      assert.equal(rb.status, 200);
      assert.equal(rb.body.toString(), "b");
    } finally {
      a.destroy();
      await fwd.close();
      await shut(front);
      await up.close();
    }
  });
});
