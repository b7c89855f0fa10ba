import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import http from "node:http";
import type { IncomingMessage, IncomingHttpHeaders } from "node:http";
import net from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { pino } from "pino";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { freePort, LOOPBACK, request, spawnNode, startFront, startSilentUpstream, startUpstream, waitForPort } from "../../../support/upstream.js";
import { sleep, tempDir, within } from "../../../support/wait.js";

const jsonRpcError = (body: Buffer): { jsonrpc: string; id: null; error: { code: number; message: string } } => {
  const v = JSON.parse(body.toString("utf8"));
  assert.equal(v.jsonrpc, "2.0");
  assert.equal(v.id, null);
  assert.equal(v.error.code, -32000);
  assert.equal(typeof v.error.message, "string");
  return v;
};

/** Waits (bounded) until `cond()` holds. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

describe("forwarder: headers", () => {
  it("request: hop-by-hop stripped, X-Forwarded-* overwritten, X-Attested-Client-* replaced, MCP headers, method, path and query untouched", async () => {
    let seen: { method?: string; url?: string; headers: IncomingHttpHeaders; raw: string[] } | undefined;
    const up = await startUpstream((req, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers, raw: req.rawHeaders };
      req.resume();
      req.on("end", () => res.end("ok"));
    });
    const front = await startFront({
      target: { kind: "http", host: LOOPBACK, port: up.port },
      attestedHeaders: () => ({ "X-Attested-Client-Mrenclave": "ab".repeat(32), "X-Attested-Client-Verified": "true" }),
    });
    try {
      // Raw bytes, so that headers Node's client would refuse or rewrite (TE, Trailer, Connection) go out as written.
      const headerLines = [
        "PATCH /mcp/a%20b?x=1&y=%2F&x=2 HTTP/1.1",
        "Host: front.example:8443",
        "Connection: keep-alive, X-Hop-Named",
        "X-Hop-Named: must go",
        "Keep-Alive: timeout=99",
        "Proxy-Connection: keep-alive",
        "TE: trailers",
        "Trailer: X-Checksum",
        "Upgrade: h2c",
        "Proxy-Authorization: Basic cHJveHk6c2VjcmV0",
        "X-Forwarded-For: 6.6.6.6",
        "X-Forwarded-Proto: http",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Port: 1",
        "Forwarded: for=6.6.6.6",
        `X-Attested-Client-Mrenclave: ${"00".repeat(32)}`,
        "x-attested-CLIENT-verified: true",
        "X-ATTESTED-CLIENT-Extra: forged",
        "Mcp-Session-Id: sess-123",
        "MCP-Protocol-Version: 2025-06-18",
        "Last-Event-ID: evt-42",
        "Accept: application/json, text/event-stream",
        "Accept-Encoding: gzip, br",
        "Authorization: Bearer tok",
        "Content-Type: application/json",
        "Content-Length: 17",
        "X-Custom: kept",
      ];
      const replyText = await within(
        new Promise<string>((resolve, reject) => {
          const sock = net.connect({ host: LOOPBACK, port: front.port });
          let text = "";
          sock.on("data", (d: Buffer) => {
            text += d.toString("latin1");
            if (/\r\n\r\nok$/.test(text)) {
              sock.destroy();
              resolve(text);
            }
          });
          sock.on("error", reject);
          sock.write(headerLines.join("\r\n") + "\r\n\r\n" + '{"jsonrpc":"2.0"}');
        }),
        5000,
        "raw PATCH",
      );
      const reply = { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(replyText)?.[1]) };
      assert.equal(reply.status, 200);
      assert.ok(seen);
      const h = seen.headers;
      assert.equal(seen.method, "PATCH");
      assert.equal(seen.url, "/mcp/a%20b?x=1&y=%2F&x=2");
      for (const gone of ["x-hop-named", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authorization", "x-forwarded-port", "forwarded", "x-attested-client-extra"]) {
        assert.equal(h[gone], undefined, `${gone} must not reach the upstream`);
      }
      // The agent's own hop header, nothing of the client's.
      assert.equal(h["connection"], "keep-alive");
      assert.equal(h["x-forwarded-for"], "127.0.0.1");
      assert.equal(h["x-forwarded-proto"], "https");
      assert.equal(h["x-forwarded-host"], "front.example:8443");
      assert.equal(h["host"], "front.example:8443");
      assert.equal(h["x-attested-client-mrenclave"], "ab".repeat(32));
      assert.equal(h["x-attested-client-verified"], "true");
      assert.equal(seen.raw.filter((n, i) => i % 2 === 0 && n.toLowerCase().startsWith("x-attested-client-")).length, 2);
      assert.equal(h["mcp-session-id"], "sess-123");
      assert.equal(h["mcp-protocol-version"], "2025-06-18");
      assert.equal(h["last-event-id"], "evt-42");
      assert.equal(h["accept"], "application/json, text/event-stream");
      assert.equal(h["accept-encoding"], "gzip, br");
      assert.equal(h["authorization"], "Bearer tok");
      assert.equal(h["x-custom"], "kept");
      assert.equal(h["content-length"], "17");
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("response: status, Set-Cookie list and end-to-end headers passed, hop-by-hop stripped, compressed bytes untouched", async () => {
    const gz = gzipSync(Buffer.from("compressed payload ".repeat(100)));
    const up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(418, [
        "Set-Cookie",
        "a=1; Path=/; HttpOnly",
        "Set-Cookie",
        "b=2; Secure",
        "Content-Encoding",
        "gzip",
        "Content-Type",
        "application/octet-stream",
        "Mcp-Session-Id",
        "sess-from-upstream",
        "Connection",
        "X-Hop-Res",
        "X-Hop-Res",
        "must go",
        "Keep-Alive",
        "timeout=77",
        "Proxy-Authenticate",
        "Basic realm=x",
        "Trailer",
        "X-Sum",
        "Upgrade",
        "h2c",
        "X-Kept",
        "yes",
      ]);
      res.end(gz);
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      const reply = await request(front.port, { path: "/r", headers: { "Accept-Encoding": "gzip" } });
      assert.equal(reply.status, 418);
      assert.deepEqual(reply.headers["set-cookie"], ["a=1; Path=/; HttpOnly", "b=2; Secure"]);
      assert.equal(reply.headers["content-encoding"], "gzip");
      assert.equal(reply.headers["mcp-session-id"], "sess-from-upstream");
      assert.equal(reply.headers["x-kept"], "yes");
      assert.ok(reply.body.equals(gz), "compressed body passed byte for byte");
      for (const gone of ["x-hop-res", "proxy-authenticate", "trailer", "upgrade"]) assert.equal(reply.headers[gone], undefined, gone);
      assert.ok(!String(reply.headers["keep-alive"] ?? "").includes("77"), "upstream Keep-Alive not relayed");
      assert.ok(
        !String(reply.headers["connection"] ?? "")
          .toLowerCase()
          .includes("x-hop-res"),
      );
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("Host: the client's by default, rewritten when hostHeader is set; the upstream connection is kept alive", async () => {
    const hosts: (string | undefined)[] = [];
    const ports: number[] = [];
    const up = await startUpstream((req, res) => {
      hosts.push(req.headers.host);
      ports.push(req.socket.remotePort ?? 0);
      res.end("ok");
    });
    const plain = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    const rewrite = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port }, hostHeader: "upstream.internal:9000" });
    try {
      await request(plain.port, { path: "/", headers: { Host: "client.example" } });
      await request(plain.port, { path: "/", headers: { Host: "client.example" } });
      await request(rewrite.port, { path: "/", headers: { Host: "client.example" } });
      assert.deepEqual(hosts, ["client.example", "client.example", "upstream.internal:9000"]);
      assert.equal(ports[0], ports[1], "second request reuses the kept-alive upstream connection");
    } finally {
      await plain.close();
      await rewrite.close();
      await up.close();
    }
  });
});

describe("forwarder: request bodies", () => {
  it("a 2 MB body streamed in chunks arrives intact (chunked and with Content-Length)", async () => {
    const up = await startUpstream((req, res) => {
      const hash = createHash("sha256");
      let n = 0;
      req.on("data", (c: Buffer) => {
        hash.update(c);
        n += c.length;
      });
      req.on("end", () => res.end(JSON.stringify({ n, sha: hash.digest("hex"), te: req.headers["transfer-encoding"] ?? null })));
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      const body = randomBytes(2 * 1024 * 1024);
      const sha = createHash("sha256").update(body).digest("hex");
      for (const chunked of [true, false]) {
        const reply = await within(
          new Promise<{ n: number; sha: string; te: string | null }>((resolve, reject) => {
            const req = http.request(
              {
                host: LOOPBACK,
                port: front.port,
                method: "POST",
                path: "/upload",
                agent: false,
                headers: chunked ? {} : { "Content-Length": body.length },
              },
              (res) => {
                let s = "";
                res.on("data", (d: Buffer) => (s += d.toString()));
                res.on("end", () => resolve(JSON.parse(s)));
              },
            );
            req.on("error", reject);
            // 32 writes of 64 KiB, yielding between them.
            let i = 0;
            const step = (): void => {
              if (i >= 32) return void req.end();
              const ok = req.write(body.subarray(i * 65536, (i + 1) * 65536));
              i++;
              if (ok) setImmediate(step);
              else req.once("drain", step);
            };
            step();
          }),
          10_000,
          "2 MB upload",
        );
        assert.equal(reply.n, body.length);
        assert.equal(reply.sha, sha);
        assert.equal(reply.te, chunked ? "chunked" : null);
      }
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("Content-Length over the limit: 413 with a JSON-RPC body, before the upstream is contacted", async () => {
    let upstreamRequests = 0;
    let upstreamConnections = 0;
    const up = await startUpstream((req, res) => {
      upstreamRequests++;
      req.resume();
      res.end();
    });
    up.server.on("connection", () => upstreamConnections++);
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      const t0 = Date.now();
      const { status, headers, body } = await within(
        new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
          const req = http.request({
            host: LOOPBACK,
            port: front.port,
            method: "POST",
            path: "/mcp",
            agent: false,
            headers: { "Content-Length": 4 * 1024 * 1024 + 1, "Content-Type": "application/json" },
          });
          req.on("response", (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
              req.destroy();
            });
          });
          req.on("error", reject);
          req.flushHeaders(); // headers only: the answer must come without the body
        }),
        5000,
        "413",
      );
      assert.equal(status, 413);
      assert.equal(headers["content-type"], "application/json");
      assert.match(jsonRpcError(body).error.message, /exceeds the limit of 4194304 bytes/);
      assert.ok(Date.now() - t0 < 2000);
      await sleep(50);
      assert.equal(upstreamRequests, 0);
      assert.equal(upstreamConnections, 0);
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("chunked body over the limit: 413, the upstream handler never sees it; a body streamed past the limit is aborted upstream, never complete", async () => {
    type Seen = { url: string | undefined; complete: boolean; bytes: number };
    const seen: Seen[] = [];
    const up = await startUpstream((req, res) => {
      const entry: Seen = { url: req.url, complete: false, bytes: 0 };
      seen.push(entry);
      req.on("data", (c: Buffer) => (entry.bytes += c.length));
      req.on("end", () => {
        entry.complete = true;
        res.end("stored");
      });
      req.on("error", () => {});
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port }, bodyLimit: 16 * 1024 });

    // Writes `pieces` chunks of `size` bytes, `gapMs` apart, until an answer arrives.
    const post = (path: string, pieces: number, size: number, gapMs: number) =>
      within(
        new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
          let answered = false;
          const req = http.request({ host: LOOPBACK, port: front.port, method: "POST", path, agent: false });
          req.on("response", (res) => {
            answered = true;
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
            res.on("error", reject);
          });
          req.on("error", (e) => {
            if (!answered) reject(e);
          });
          let i = 0;
          const step = (): void => {
            if (answered || req.destroyed) return;
            if (i >= pieces) return void req.end();
            req.write(Buffer.alloc(size, 0x61));
            i++;
            setTimeout(step, gapMs);
          };
          step();
        }),
        5000,
        path,
      );
    try {
      // One write larger than the limit: refused before a byte goes upstream.
      const one = await post("/one", 1, 20 * 1024, 0);
      assert.equal(one.status, 413);
      assert.match(jsonRpcError(one.body).error.message, /exceeds the limit of 16384 bytes/);
      await sleep(50);
      assert.equal(seen.length, 0, "the upstream handler never saw the request");

      // Streamed in 4 KiB pieces: the first pieces were already forwarded; the upstream sees an aborted request.
      const streamed = await post("/streamed", 12, 4 * 1024, 10);
      assert.equal(streamed.status, 413);
      jsonRpcError(streamed.body);
      await until(() => seen.length === 1, 1000, "upstream request record");
      await sleep(100);
      assert.equal(seen[0]!.complete, false, "the upstream never got a complete body");
      assert.ok(seen[0]!.bytes <= 16 * 1024, `no byte past the limit went upstream (${seen[0]!.bytes})`);
    } finally {
      await front.close();
      await up.close();
    }
  });
});

describe("forwarder: streaming", () => {
  it("SSE: headers reach the client at once, events arrive one by one", async (t) => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
      res.flushHeaders();
      let n = 0;
      let timer: NodeJS.Timeout | undefined;
      const tick = (): void => {
        if (n >= 20) return void res.end();
        res.write(`id: ${n}\ndata: {"n":${n}}\n\n`);
        n++;
        timer = setTimeout(tick, 10);
      };
      timer = setTimeout(tick, 500);
      res.on("close", () => clearTimeout(timer));
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      const t0 = performance.now();
      const r = await within(
        new Promise<{ headersMs: number; firstDataMs: number; chunks: number; text: string }>((resolve, reject) => {
          const req = http.get({ host: LOOPBACK, port: front.port, path: "/events", agent: false, headers: { Accept: "text/event-stream" } }, (res) => {
            const headersMs = performance.now() - t0;
            assert.equal(res.headers["content-type"], "text/event-stream");
            let chunks = 0;
            let firstDataMs = -1;
            let text = "";
            res.on("data", (d: Buffer) => {
              if (chunks === 0) firstDataMs = performance.now() - t0;
              chunks++;
              text += d.toString();
            });
            res.on("end", () => resolve({ headersMs, firstDataMs, chunks, text }));
            res.on("error", reject);
          });
          req.on("error", reject);
        }),
        5000,
        "SSE stream",
      );
      t.diagnostic(`headers after ${r.headersMs.toFixed(1)} ms, first event at ${r.firstDataMs.toFixed(0)} ms, ${r.chunks} chunks for 20 events`);
      assert.ok(r.headersMs < 250, `headers after ${r.headersMs.toFixed(1)} ms (upstream's first event comes at 500 ms)`);
      assert.ok(r.firstDataMs >= 450, `first event at ${r.firstDataMs.toFixed(1)} ms`);
      assert.ok(r.chunks >= 10, `client saw ${r.chunks} separate chunks`);
      assert.equal((r.text.match(/^data: /gm) ?? []).length, 20);
      assert.deepEqual(front.hooks.events, ["open:sse", "close:sse"]);
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("client leaves mid-SSE: the upstream request closes within 1 s", async () => {
    let upstreamClosedAt = 0;
    let upstreamOpen = 0;
    const up = await startUpstream((req, res) => {
      upstreamOpen++;
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.flushHeaders();
      let n = 0;
      const timer = setInterval(() => {
        if (++n > 200) return void res.end();
        res.write(`data: ${n}\n\n`);
      }, 20);
      req.on("close", () => {
        upstreamClosedAt = performance.now();
        clearInterval(timer);
      });
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      const leftAt = await within(
        new Promise<number>((resolve, reject) => {
          const req = http.get({ host: LOOPBACK, port: front.port, path: "/events", agent: false }, (res) => {
            let chunks = 0;
            res.on("data", () => {
              if (++chunks === 3) {
                req.destroy();
                resolve(performance.now());
              }
            });
          });
          req.on("error", (e) => {
            if ((e as NodeJS.ErrnoException).code !== "ECONNRESET") reject(e);
          });
        }),
        5000,
        "3 events",
      );
      await until(() => upstreamClosedAt > 0, 1000, "upstream req 'close'");
      assert.ok(upstreamClosedAt - leftAt < 1000);
      assert.equal(upstreamOpen, 1);
      await until(() => front.hooks.events.length === 2, 1000, "stream hooks");
      assert.deepEqual(front.hooks.events, ["open:sse", "close:sse"]);
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("upstream dies mid-response: the client sees an abort, not a clean end (SSE and Content-Length)", async () => {
    const up = await startUpstream((req, res) => {
      if (req.url === "/sse") {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.write("data: 1\n\n");
        setTimeout(() => res.write("data: 2\n\n"), 20);
      } else {
        res.writeHead(200, { "Content-Type": "application/json", "Content-Length": 1000 });
        res.write('{"partial":');
      }
      setTimeout(() => req.socket.destroy(), 60);
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      for (const path of ["/sse", "/fixed"]) {
        const r = await within(
          new Promise<{ ended: boolean; errored: boolean; complete: boolean; bytes: number }>((resolve) => {
            const req = http.get({ host: LOOPBACK, port: front.port, path, agent: false }, (res) => {
              let ended = false;
              let errored = false;
              let bytes = 0;
              res.on("data", (d: Buffer) => (bytes += d.length));
              res.on("end", () => (ended = true));
              res.on("error", () => (errored = true));
              res.on("close", () => resolve({ ended, errored, complete: res.complete, bytes }));
            });
            req.on("error", () => {});
          }),
          5000,
          path,
        );
        assert.ok(r.bytes > 0, `${path}: some data went through first`);
        assert.equal(r.ended, false, `${path}: no clean end`);
        assert.equal(r.complete, false, `${path}: incomplete`);
        assert.equal(r.errored, true, `${path}: the client saw an error`);
      }
      assert.deepEqual(front.hooks.events, ["open:sse", "error:reset", "close:sse", "error:reset"]);
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("idle timeout closes a quiet stream but never caps a busy one", async () => {
    let quietClosed = false;
    const up = await startUpstream((req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.flushHeaders();
      if (req.url === "/busy") {
        let n = 0;
        const timer = setInterval(() => {
          res.write(`data: ${n}\n\n`);
          if (++n >= 12) {
            clearInterval(timer);
            res.end();
          }
        }, 100);
        res.on("close", () => clearInterval(timer));
      } else {
        res.write("data: hello\n\n");
        res.on("close", () => (quietClosed = true));
      }
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port }, idleTimeoutMs: 400 });
    const get = (path: string) =>
      within(
        new Promise<{ ended: boolean; events: number; ms: number }>((resolve) => {
          const t0 = performance.now();
          const req = http.get({ host: LOOPBACK, port: front.port, path, agent: false }, (res) => {
            let ended = false;
            let text = "";
            res.on("data", (d: Buffer) => (text += d.toString()));
            res.on("end", () => (ended = true));
            res.on("error", () => {});
            res.on("close", () => resolve({ ended, events: (text.match(/^data: /gm) ?? []).length, ms: performance.now() - t0 }));
          });
          req.on("error", () => {});
        }),
        5000,
        path,
      );
    try {
      const busy = await get("/busy");
      assert.equal(busy.ended, true);
      assert.equal(busy.events, 12);
      assert.ok(busy.ms > 1000, `a stream of ${busy.ms.toFixed(0)} ms outlived the 400 ms idle timeout`);
      const quiet = await get("/quiet");
      assert.equal(quiet.ended, false);
      assert.equal(quiet.events, 1);
      assert.ok(quiet.ms >= 380, `quiet stream closed after ${quiet.ms.toFixed(0)} ms, before the idle timeout`);
      await until(() => quietClosed, 1000, "upstream side of the quiet stream closed");
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("close() ends open streams and the upstream sees them end", async () => {
    let upstreamClosed = false;
    const up = await startUpstream((req, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write("data: 1\n\n");
      req.on("close", () => (upstreamClosed = true));
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    try {
      const closed = within(
        new Promise<boolean>((resolve) => {
          const req = http.get({ host: LOOPBACK, port: front.port, path: "/", agent: false }, (res) => {
            let ended = false;
            res.once("data", () => front.fwd.close());
            res.on("end", () => (ended = true));
            res.on("error", () => {});
            res.on("close", () => resolve(ended));
          });
          req.on("error", () => {});
        }),
        5000,
        "stream closed",
      );
      assert.equal(await closed, false);
      await until(() => upstreamClosed, 1000, "upstream close");
      const after = await request(front.port, { path: "/" });
      assert.equal(after.status, 503);
      jsonRpcError(after.body);
    } finally {
      await front.close();
      await up.close();
    }
  });

  it("close() resolves once the kept-alive upstream connections are closed; an upgrade afterwards is refused with 503", async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end("ok");
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    const upstreamConnections = (): Promise<number> => new Promise((resolve, reject) => up.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    try {
      await Promise.all([1, 2, 3].map(() => request(front.port, { path: "/" })));
      assert.ok((await upstreamConnections()) > 0);
      await within(front.fwd.close(), 5000, "forwarder close");
      await waitForConnections(upstreamConnections, 0);
      const refused = await new Promise<string>((resolve, reject) => {
        const s = net.connect(front.port, LOOPBACK, () => s.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
        let text = "";
        s.on("data", (d: Buffer) => (text += d.toString("latin1")));
        s.on("close", () => resolve(text));
        s.on("error", reject);
      });
      assert.match(refused, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
      jsonRpcError(Buffer.from(refused.slice(refused.indexOf("\r\n\r\n") + 4), "latin1"));
    } finally {
      await front.close();
      await up.close();
    }
  });
});

/** Waits (bounded) until the upstream holds `n` connections: their close reaches it a moment after ours. */
async function waitForConnections(count: () => Promise<number>, n: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while ((await count()) !== n) {
    if (Date.now() > deadline) throw new Error(`the upstream still holds ${await count()} connections, expected ${n}`);
    await sleep(5);
  }
}

describe("forwarder: upstream failures", () => {
  it("502 with a JSON-RPC body when nothing listens (TCP and UNIX socket)", async () => {
    const port = await freePort();
    const dir = tempDir("fwd-");
    const tcp = await startFront({ target: { kind: "http", host: LOOPBACK, port } });
    const unix = await startFront({ target: { kind: "unix", path: join(dir, "absent.sock") } });
    try {
      const r = await request(tcp.port, { method: "POST", path: "/mcp", headers: { "Content-Type": "application/json" } }, "{}");
      assert.equal(r.status, 502);
      assert.equal(r.headers["content-type"], "application/json");
      const msg = jsonRpcError(r.body).error.message;
      assert.match(msg, new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
      assert.doesNotMatch(msg, /\n\s+at /);
      assert.deepEqual(tcp.hooks.events, ["error:connect"]);
      const u = await request(unix.port, { path: "/mcp" });
      assert.equal(u.status, 502);
      assert.match(jsonRpcError(u.body).error.message, /unreachable \(ENOENT\)/);
      assert.deepEqual(unix.hooks.events, ["error:connect"]);
    } finally {
      await tcp.close();
      await unix.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("504 when the upstream accepts but never answers", async () => {
    const silent = await startSilentUpstream();
    const held = silent.held;
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: silent.port }, headersTimeoutMs: 200 });
    try {
      const t0 = performance.now();
      const r = await request(front.port, { path: "/mcp" });
      const ms = performance.now() - t0;
      assert.equal(r.status, 504);
      assert.equal(r.headers["content-type"], "application/json");
      assert.match(jsonRpcError(r.body).error.message, /no response headers within 200 ms/);
      assert.ok(ms >= 180, `answered after ${ms.toFixed(0)} ms, before the headers timeout`);
      assert.deepEqual(front.hooks.events, ["error:timeout"]);
      await until(() => held.size === 0, 1000, "the abandoned upstream connection closed");
    } finally {
      await front.close();
      await silent.close();
    }
  });
});

describe("forwarder: targets and upgrades", () => {
  it("UNIX socket target", async () => {
    const dir = tempDir("fwd-");
    const sock = join(dir, "up.sock");
    const up = await startUpstream((req, res) => {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ url: req.url, host: req.headers.host, xff: req.headers["x-forwarded-for"] }));
    }, sock);
    const front = await startFront({ target: { kind: "unix", path: sock } });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await request(front.port, { path: `/over/unix?i=${i}`, headers: { Host: "mcp.example" } });
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body.toString()), { url: `/over/unix?i=${i}`, host: "mcp.example", xff: "127.0.0.1" });
      }
    } finally {
      await front.close();
      await up.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("Upgrade: 101 relayed and bytes echoed both ways; a refused upgrade is relayed as a plain response", async () => {
    const up = await startUpstream((_req, res) => res.end("not an upgrade"));
    let upgradeHeaders: IncomingHttpHeaders | undefined;
    let upstreamSocketClosed = false;
    up.server.on("upgrade", (req: IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.on("error", () => {});
      if (req.url === "/deny") {
        socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n");
        return;
      }
      upgradeHeaders = req.headers;
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n");
      if (head.length) socket.write(head);
      socket.on("data", (d: Buffer) => socket.write(d));
      socket.on("end", () => socket.end()); // as WebSocket servers do when the peer's side ends
      socket.on("close", () => (upstreamSocketClosed = true));
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    const upgradeHeadersOut = { Connection: "Upgrade", Upgrade: "test", "X-Attested-Client-Forged": "1", "X-Forwarded-For": "6.6.6.6" };
    try {
      const echoed = await within(
        new Promise<{ status: number; upgrade: string | undefined; echo: string }>((resolve, reject) => {
          const req = http.request({ host: LOOPBACK, port: front.port, path: "/ws", agent: false, headers: upgradeHeadersOut });
          req.on("upgrade", (res: IncomingMessage, socket: net.Socket) => {
            let echo = "";
            socket.on("data", (d: Buffer) => {
              echo += d.toString();
              if (echo === "ping-1ping-2") {
                socket.destroy();
                resolve({ status: res.statusCode ?? 0, upgrade: res.headers.upgrade, echo });
              } else if (echo === "ping-1") socket.write("ping-2");
            });
            socket.write("ping-1");
          });
          req.on("response", (res) => reject(new Error(`expected an upgrade, got ${res.statusCode}`)));
          req.on("error", reject);
          req.end();
        }),
        5000,
        "upgrade echo",
      );
      assert.deepEqual(echoed, { status: 101, upgrade: "test", echo: "ping-1ping-2" });
      assert.equal(upgradeHeaders?.["upgrade"], "test");
      assert.equal(upgradeHeaders?.["connection"], "Upgrade");
      assert.equal(upgradeHeaders?.["x-forwarded-for"], "127.0.0.1");
      assert.equal(upgradeHeaders?.["x-attested-client-forged"], undefined);
      await until(() => upstreamSocketClosed, 1000, "upstream tunnel end closed");
      await until(() => front.hooks.events.length === 2, 1000, "websocket hooks");
      assert.deepEqual(front.hooks.events, ["open:websocket", "close:websocket"]);

      const denied = await within(
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request({ host: LOOPBACK, port: front.port, path: "/deny", agent: false, headers: upgradeHeadersOut });
          req.on("upgrade", () => reject(new Error("unexpected upgrade")));
          req.on("response", (res) => {
            let body = "";
            res.on("data", (d: Buffer) => (body += d.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on("error", reject);
          req.end();
        }),
        5000,
        "refused upgrade",
      );
      assert.deepEqual(denied, { status: 403, body: "nope\n" });
    } finally {
      await front.close();
      await up.close();
    }
  });
});

describe("forwarder: logging", () => {
  it("one debug line per exchange, without bodies, query strings, Authorization or Cookie values", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const up = await startUpstream((req, res) => {
      req.resume();
      req.on("end", () => res.end("response-body-secret"));
    });
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port }, log: pino({ level: "debug" }, sink) });
    try {
      const r = await request(front.port, { method: "POST", path: "/mcp?token=query-secret", headers: { Authorization: "Bearer auth-secret", Cookie: "sid=cookie-secret" } }, "request-body-secret");
      assert.equal(r.status, 200);
      await until(() => lines.length >= 1, 1000, "log line");
      await sleep(50);
      assert.equal(lines.length, 1);
      const line = JSON.parse(lines[0]!);
      assert.equal(line.level, 20);
      assert.equal(line.method, "POST");
      assert.equal(line.path, "/mcp");
      assert.equal(line.status, 200);
      for (const secret of ["query-secret", "auth-secret", "cookie-secret", "request-body-secret", "response-body-secret"]) {
        assert.ok(!lines[0]!.includes(secret), `log must not contain ${secret}`);
      }
    } finally {
      await front.close();
      await up.close();
    }
  });
});

describe("forwarder: real MCP server (server-everything, streamableHttp)", () => {
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it("SDK client through the proxy: initialize, tools/list, echo, progress while running, GET stream reconnect without 409, DELETE", async (t) => {
    const port = await freePort();
    const child = spawnNode(["node_modules/@modelcontextprotocol/server-everything/dist/index.js", "streamableHttp"], { PORT: String(port) });
    stops.push(child.stop);
    try {
      await waitForPort(port, 150, 100);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${child.output()}`);
    }
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port } });
    stops.push(front.close);
    const url = `http://${LOOPBACK}:${front.port}/mcp`;

    const client = new Client({ name: "forward-test", version: "0.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    await within(client.connect(transport), 10_000, "initialize");
    assert.ok(transport.sessionId, "session id relayed");

    const tools = await within(client.listTools(), 5000, "tools/list");
    assert.ok(tools.tools.some((t) => t.name === "echo"));

    const echo = await within(client.callTool({ name: "echo", arguments: { message: "through the attested proxy" } }), 5000, "echo");
    const content = echo.content as { type: string; text?: string }[];
    assert.match(content[0]?.text ?? "", /through the attested proxy/);

    const t0 = performance.now();
    const progressAt: number[] = [];
    const long = await within(
      client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } }, undefined, {
        onprogress: () => void progressAt.push(performance.now() - t0),
        timeout: 15_000,
      }),
      15_000,
      "long-running operation",
    );
    const doneAt = performance.now() - t0;
    assert.match((long.content as { text?: string }[])[0]?.text ?? "", /completed/i);
    t.diagnostic(`progress at ${progressAt.map((x) => x.toFixed(0)).join(", ")} ms; result at ${doneAt.toFixed(0)} ms`);
    assert.ok(progressAt.length >= 3, `${progressAt.length} progress notifications`);
    assert.ok(doneAt - progressAt[0]! >= 1000, `first progress at ${progressAt[0]!.toFixed(0)} ms, result at ${doneAt.toFixed(0)} ms`);
    assert.ok(progressAt[progressAt.length - 1]! - progressAt[0]! >= 800, `progress spread: ${progressAt.map((t) => t.toFixed(0)).join(", ")}`);

    // A second session by hand: its standalone GET stream, closed mid-way, can be reopened at once.
    const base = { "Content-Type": "application/json", Accept: "application/json, text/event-stream" };
    const init = await within(
      fetch(url, {
        method: "POST",
        headers: base,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "initialize",
          params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
        }),
      }),
      5000,
      "raw initialize",
    );
    assert.equal(init.status, 200);
    const sid = init.headers.get("mcp-session-id");
    assert.ok(sid);
    const initText = await init.text();
    const protocolVersion = /"protocolVersion":"([^"]+)"/.exec(initText)?.[1] ?? "2025-06-18";
    const session = { "Mcp-Session-Id": sid, "MCP-Protocol-Version": protocolVersion };
    const note = await fetch(url, { method: "POST", headers: { ...base, ...session }, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
    assert.equal(note.status, 202);
    await note.arrayBuffer();

    const openGet = async (): Promise<{ status: number; abort: () => void }> => {
      const ac = new AbortController();
      const res = await within(fetch(url, { headers: { Accept: "text/event-stream", ...session }, signal: ac.signal }), 5000, "GET stream");
      if (res.status !== 200) await res.arrayBuffer();
      else res.body?.pipeTo(new WritableStream()).catch(() => {});
      return { status: res.status, abort: () => ac.abort() };
    };
    const first = await openGet();
    assert.equal(first.status, 200);
    const meanwhile = await openGet();
    assert.equal(meanwhile.status, 409, "the server allows one GET stream per session (so the next check means something)");
    first.abort();
    await sleep(150);
    const again = await openGet();
    assert.equal(again.status, 200, "GET after the client left the previous one: no 409");
    again.abort();
    const del = await fetch(url, { method: "DELETE", headers: session });
    assert.equal(del.status, 200);
    await del.arrayBuffer();

    await within(transport.terminateSession(), 5000, "DELETE");
    await client.close();
    assert.ok(front.hooks.events.includes("open:sse"));
    assert.ok(!front.hooks.events.some((e) => e.startsWith("error:")), front.hooks.events.join(","));
  });
});
