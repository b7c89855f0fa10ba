/**
 * The floor under "added p50 latency at one connection": what a bare Node proxy adds, with nothing
 * of this project in it. A child process runs an https server that buffers each request and sends
 * it upstream with one undici `Client.request` (no checks, no metrics, no log); beside it runs
 * `serve` with the benchmark's config, both in front of the benchmark's upstream. One keep-alive
 * connection per target, sequential JSON-RPC POSTs, round-robin (scripts/bench/latency.ts).
 *
 *   node dist/scripts/bench/proxy-floor.js [requests, default 3000]
 *
 * Needs openssl (the bare proxy's certificate: P-384, as serve's). Prints one line per target.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "undici";
import { measureRpcLatencies } from "./latency.js";
import { Children, LOOPBACK, which } from "./proc.js";
import { makeCertificate, startServe, startUpstream } from "./targets.js";

const build = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function child(upstreamPort: number, cert: string, key: string): void {
  const upstream = new Client(`http://${LOOPBACK}:${upstreamPort}`, { pipelining: 1 });
  const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const h of ["content-type", "accept"]) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
      upstream
        .request({ path: req.url ?? "/", method: req.method === "POST" ? "POST" : "GET", headers, body: Buffer.concat(chunks) })
        .then(async (r) => {
          const body: Buffer[] = [];
          for await (const c of r.body) body.push(c as Buffer);
          res.writeHead(r.statusCode, { "content-type": String(r.headers["content-type"] ?? "application/json") });
          res.end(Buffer.concat(body));
        })
        .catch(() => res.destroy());
    });
  });
  server.listen(0, LOOPBACK, () => process.stderr.write(`floor listening ${(server.address() as { port: number }).port}\n`));
}

async function parent(requests: number): Promise<void> {
  const openssl = which("openssl");
  if (!openssl) throw new Error("proxy-floor: openssl not found (it makes the certificate)");
  const dir = mkdtempSync(join(os.tmpdir(), "amcp-proxy-floor-"));
  const children = new Children();
  try {
    const { cert, key } = makeCertificate(openssl, dir, "P-384");
    const up = await startUpstream(children, join(build, "scripts/bench/upstream.js"));
    const bare = children.spawn("bare proxy", process.execPath, [fileURLToPath(import.meta.url), "--child", String(up.port), cert, key]);
    const serve = await startServe(children, join(build, "proxy/cli/main.js"), join(dir, "serve"), up.port, "P-384");
    let barePort = 0;
    for (let i = 0; i < 100 && !barePort; i++) {
      barePort = Number(/floor listening (\d+)/.exec(bare.output())?.[1] ?? 0);
      if (!barePort) await new Promise((r) => setTimeout(r, 100));
    }
    if (!barePort) throw new Error(`proxy-floor: the bare proxy did not start: ${bare.output()}`);
    const r = await measureRpcLatencies({ direct: `${up.base}/rpc`, bare: `https://${LOOPBACK}:${barePort}/rpc`, serve: `${serve.base}/rpc` }, { requests, warmup: 500, budgetMs: 30_000, rounds: 10 });
    for (const k of ["direct", "bare", "serve"] as const) {
      console.log(`${k}: p50 ${r[k].ms.p50.toFixed(3)} ms, added over direct ${(r[k].ms.p50 - r.direct.ms.p50).toFixed(3)} ms (${r[k].requests} requests)`);
    }
  } finally {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
if (args[0] === "--child") child(Number(args[1]), args[2]!, args[3]!);
else await parent(Number(args[0] ?? 3000));
