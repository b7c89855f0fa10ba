/**
 * Latency at MCP-like load: one keep-alive connection, sequential JSON-RPC POSTs (each waits for
 * the previous answer), timed from the request's start to the last byte of the answer.
 * Bounded by a request count and a time budget; warm-up requests are not recorded.
 */
import http from "node:http";
import https from "node:https";
import { summarize, type Summary } from "./stats.js";

export interface RpcLatency {
  url: string;
  ms: Summary;
  requests: number;
  /** TCP connections opened for the recorded requests (1 when keep-alive held). */
  connections: number;
}

function body(id: number): string {
  return JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { message: "hello from the benchmark" } } });
}

function post(url: URL, agent: http.Agent, id: number, timeoutMs: number): Promise<void> {
  const payload = body(id);
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "content-length": Buffer.byteLength(payload),
        },
        timeout: timeoutMs,
      },
      (res) => {
        let n = 0;
        res.on("data", (c: Buffer) => (n += c.length));
        res.on("end", () => (res.statusCode === 200 && n > 0 ? resolve() : reject(new Error(`${url.href}: status ${res.statusCode}, ${n} bytes`))));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${url.href}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

export async function measureRpcLatency(opts: { url: string; requests: number; warmup: number; budgetMs: number }): Promise<RpcLatency> {
  const url = new URL(opts.url);
  const agentOpts = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1, keepAliveMsecs: 10_000 };
  const agent = url.protocol === "https:" ? new https.Agent({ ...agentOpts, rejectUnauthorized: false }) : new http.Agent(agentOpts);
  let sockets = 0;
  try {
    for (let i = 0; i < opts.warmup; i++) await post(url, agent, i, 10_000);
    // Count connections from here on: with keep-alive the warm socket carries everything.
    const count = (): void => void sockets++;
    const origCreate = agent.createConnection.bind(agent);
    agent.createConnection = ((...args: Parameters<typeof origCreate>) => {
      count();
      return origCreate(...args);
    }) as typeof agent.createConnection;
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < opts.requests && performance.now() - t0 < opts.budgetMs; i++) {
      const start = performance.now();
      await post(url, agent, opts.warmup + i, 10_000);
      samples.push(performance.now() - start);
    }
    return { url: opts.url, ms: summarize(samples), requests: samples.length, connections: sockets };
  } finally {
    agent.destroy();
  }
}
