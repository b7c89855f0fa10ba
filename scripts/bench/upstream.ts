/**
 * The benchmark's upstream: a small Node HTTP server on 127.0.0.1, run as its own process
 * (`node dist/scripts/bench/upstream.js [PORT]`) so that the load it serves and the clients that
 * measure it do not share an event loop. It prints `upstream listening 127.0.0.1:PORT` on stdout.
 *
 *   GET  /1k, /64k     JSON bodies of exactly 1,024 and 65,536 bytes
 *   GET  /sse          text/event-stream, `data: {"t": <ms since the epoch, µs precision>}` every
 *                      10 ms (`?interval=MS` to change it; `?interval=0` or `?idle`: headers only)
 *   POST /rpc          echoes a small JSON-RPC result with the request's id
 *
 * It exits when its stdin closes (the benchmark died) or on SIGTERM / SIGINT.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HOST = "127.0.0.1";
/** Streams end on their own after this, so nothing runs unbounded. */
const MAX_STREAM_MS = 15 * 60_000;
const RPC_BODY_LIMIT = 64 * 1024;

/** A JSON object serialised to exactly `size` bytes. */
export function jsonOfSize(size: number): Buffer {
  const head = '{"ok":true,"data":"';
  const tail = '"}';
  const fill = size - head.length - tail.length;
  if (fill < 0) throw new RangeError(`size ${size} too small`);
  const b = Buffer.from(head + "x".repeat(fill) + tail);
  if (b.length !== size) throw new Error("size mismatch");
  return b;
}

const BODIES: Record<string, Buffer> = { "/1k": jsonOfSize(1024), "/64k": jsonOfSize(65536) };

/** Wall-clock milliseconds with sub-millisecond precision (comparable across processes). */
const nowMs = (): number => performance.timeOrigin + performance.now();

function sse(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): void {
  const interval = query.has("idle") ? 0 : Math.max(0, Math.min(60_000, Number(query.get("interval") ?? 10) || 0));
  res.socket?.setNoDelay(true);
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
  const timers: NodeJS.Timeout[] = [];
  const end = (): void => {
    for (const t of timers) clearInterval(t);
    if (!res.writableEnded) res.end();
  };
  if (interval > 0) {
    timers.push(setInterval(() => res.write(`data: {"t": ${nowMs().toFixed(3)}}\n\n`), interval));
  }
  timers.push(setTimeout(end, MAX_STREAM_MS));
  req.once("close", end);
  res.once("close", end);
}

function rpc(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (c: Buffer) => {
    size += c.length;
    if (size <= RPC_BODY_LIMIT) chunks.push(c);
  });
  req.on("end", () => {
    let id: unknown = null;
    try {
      const msg = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: unknown };
      id = msg.id ?? null;
    } catch {
      // answer anyway: the benchmark measures transport, not parsing
    }
    const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "ok" }] } }));
    res.writeHead(size > RPC_BODY_LIMIT ? 413 : 200, { "content-type": "application/json", "content-length": body.length });
    res.end(body);
  });
}

export function createUpstream(): http.Server {
  const server = http.createServer((req, res) => {
    const [path = "/", qs = ""] = (req.url ?? "/").split("?", 2);
    const body = BODIES[path];
    if (req.method === "GET" && body) {
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    } else if (req.method === "GET" && path === "/sse") {
      sse(req, res, new URLSearchParams(qs));
    } else if (req.method === "POST" && path === "/rpc") {
      rpc(req, res);
    } else {
      res.writeHead(404, { "content-type": "text/plain", "content-length": 10 });
      res.end("not found\n");
    }
  });
  // Proxies keep upstream connections for a minute or more: outlive them, so that a reused
  // connection is never closed under a request. No per-socket request cap.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  return server;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const port = Number(process.argv[2] ?? 0);
  const server = createUpstream();
  server.listen(port, HOST, () => {
    const a = server.address() as AddressInfo;
    process.stdout.write(`upstream listening ${HOST}:${a.port}\n`);
  });
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  // The benchmark holds our stdin open: when it goes away, so do we.
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
}
