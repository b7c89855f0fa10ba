/**
 * The floor under "RSS per idle SSE stream": what one idle TLS connection costs a bare Node
 * process, with nothing of this project in it. A child process runs a TLS server (`tls`: no
 * HTTP) or an https server that answers each request with SSE headers and keeps the response
 * open (`https`); this process opens N connections to it and reads the child's RSS and heap,
 * after a forced GC, before and after.
 *
 *   node dist/scripts/bench/tls-floor.js [tls|https] [connections, default 500]
 *   TLS_FLOOR_OPTIONS='{"highWaterMark":1024}' adds server options (JSON) to the child's server.
 *
 * Needs openssl (the certificate: P-384, as serve's in the benchmark). Prints one line.
 */
import { fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { fileURLToPath } from "node:url";
import { which } from "./proc.js";
import { makeCertificate } from "./targets.js";

interface Sample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

function child(kind: string, certFile: string, keyFile: string): void {
  // TLS_FLOOR_OPTIONS (JSON): extra server options, to see whether any shrinks a connection.
  const extra = JSON.parse(process.env.TLS_FLOOR_OPTIONS ?? "{}") as tls.TlsOptions;
  const opts = { ...extra, cert: readFileSync(certFile), key: readFileSync(keyFile) };
  const server =
    kind === "tls"
      ? tls.createServer(opts, (s) => s.on("data", () => {}))
      : https.createServer(opts, (_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.flushHeaders();
        });
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as { port: number }).port }));
  process.on("message", () => {
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    process.send!({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal });
  });
  process.on("disconnect", () => process.exit(0));
}

async function parent(kind: string, n: number): Promise<void> {
  const openssl = which("openssl");
  if (!openssl) throw new Error("tls-floor: openssl not found (it makes the certificate)");
  const dir = mkdtempSync(join(os.tmpdir(), "amcp-tls-floor-"));
  const { cert, key } = makeCertificate(openssl, dir, "P-384");
  const c = fork(fileURLToPath(import.meta.url), ["--child", kind, cert, key], { execArgv: ["--expose-gc"] });
  const next = <T>(): Promise<T> => new Promise((r) => c.once("message", (m) => r(m as T)));
  const sockets: tls.TLSSocket[] = [];
  try {
    const { port } = await next<{ port: number }>();
    const sample = (): Promise<Sample> => {
      const p = next<Sample>();
      c.send("sample");
      return p;
    };
    await new Promise((r) => setTimeout(r, 500));
    const before = await sample();
    for (let i = 0; i < n; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => {
          if (kind === "tls") {
            s.write("x");
            resolve();
          } else {
            s.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            s.once("data", () => resolve());
          }
        });
        s.once("error", reject);
        sockets.push(s);
      });
    }
    await new Promise((r) => setTimeout(r, 1500));
    const after = await sample();
    const kb = (x: number): string => (x / 1024 / n).toFixed(1);
    console.log(
      `${kind}: ${n} idle connections, per connection: RSS ${kb(after.rss - before.rss)} KB, heap used ${kb(after.heapUsed - before.heapUsed)} KB, heap total ${kb(after.heapTotal - before.heapTotal)} KB (Node ${process.version}, OpenSSL ${process.versions.openssl})`,
    );
  } finally {
    for (const s of sockets) s.destroy();
    c.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === "--child") child(args[1]!, args[2]!, args[3]!);
else {
  const kind = args[0] ?? "https";
  if (kind !== "tls" && kind !== "https") throw new Error(`usage: tls-floor.js [tls|https] [connections]`);
  await parent(kind, Number(args[1] ?? 500));
}
