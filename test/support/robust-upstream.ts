/**
 * The HTTP upstream of the robustness tests and the soak, usable in-process (`createRobustUpstream`)
 * or as its own process (`node robust-upstream.js [PORT]`, prints `{"port":N}`), so that a test can
 * SIGKILL it mid-stream. Routes:
 * - `GET /sse?n=N&every=MS&k=KEY[&hold=1]`: events `id: i` / `data: {"k","i"}` for i = 0..N-1 every
 *   MS ms, then `event: end` / `data: N` and the end; `n=0` never ends; `hold=1` stops writing
 *   after N events but keeps the response open (a stalled stream).
 * - `GET /slow?ms=MS`: answers after MS ms; `GET /fast`: answers at once.
 * - `POST /echo`: answers with the body's length.
 * - `GET /stats`: `{ requests, bytes, completed }`, not counted itself.
 */
import http from "node:http";
import { fileURLToPath } from "node:url";

export interface UpstreamStats {
  /** Requests whose head arrived (everything but /stats). */
  requests: number;
  /** Bytes read on every connection, /stats included. */
  bytes: number;
  /** Requests whose body arrived complete. */
  completed: number;
  /** Events written per stream key. */
  sent: Record<string, number>;
}

export function createRobustUpstream(): { server: http.Server; stats: UpstreamStats } {
  const stats: UpstreamStats = { requests: 0, bytes: 0, completed: 0, sent: {} };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://upstream");
    if (url.pathname === "/stats") {
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(stats));
      return;
    }
    stats.requests++;
    req.on("end", () => stats.completed++);
    req.on("error", () => {});
    res.on("error", () => {});
    if (url.pathname === "/echo") {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ length: n }));
      });
      return;
    }
    req.resume();
    if (url.pathname === "/fast") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
      return;
    }
    if (url.pathname === "/slow") {
      const t = setTimeout(
        () => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end('{"ok":"slow"}');
        },
        Number(url.searchParams.get("ms") ?? 1000),
      );
      res.on("close", () => clearTimeout(t));
      return;
    }
    if (url.pathname === "/sse") {
      const n = Number(url.searchParams.get("n") ?? 0);
      const every = Number(url.searchParams.get("every") ?? 50);
      const key = url.searchParams.get("k") ?? "s";
      const hold = url.searchParams.get("hold") === "1";
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      res.flushHeaders();
      let i = 0;
      stats.sent[key] = 0;
      const timer = setInterval(() => {
        if (n > 0 && i >= n) {
          clearInterval(timer);
          if (!hold) res.end(`event: end\ndata: ${n}\n\n`);
          return;
        }
        res.write(`id: ${i}\ndata: {"k":${JSON.stringify(key)},"i":${i}}\n\n`);
        i++;
        stats.sent[key] = i;
      }, every);
      res.on("close", () => clearInterval(timer));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  server.on("connection", (s) => {
    s.on("data", (c: Buffer) => (stats.bytes += c.length));
  });
  return { server, stats };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { server } = createRobustUpstream();
  server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: (server.address() as { port: number }).port }) + "\n");
  });
}
