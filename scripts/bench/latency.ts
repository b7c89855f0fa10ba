/**
 * Latency at MCP-like load: one keep-alive connection per target, sequential JSON-RPC POSTs (each
 * waits for the previous answer), timed from the request's start to the last byte of the answer.
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

function agentFor(url: URL): http.Agent {
  const agentOpts = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1, keepAliveMsecs: 10_000 };
  return url.protocol === "https:" ? new https.Agent({ ...agentOpts, rejectUnauthorized: false }) : new http.Agent(agentOpts);
}

/**
 * Every target gets its own keep-alive connection; after `warmup` requests each, the recorded
 * requests go in `rounds` rounds, round-robin across targets, so that whatever else the machine
 * does meanwhile (a collector running in an idle process, a timer) falls on all of them alike.
 * Bounded by `requests` per target and `budgetMs` for the recorded part as a whole.
 */
export async function measureRpcLatencies<K extends string>(urls: Record<K, string>, opts: { requests: number; warmup: number; budgetMs: number; rounds: number }): Promise<Record<K, RpcLatency>> {
  const keys = Object.keys(urls) as K[];
  const state = keys.map((k) => {
    const url = new URL(urls[k]);
    const agent = agentFor(url);
    const s = { key: k, url, agent, samples: [] as number[], sockets: 0 };
    // Count connections made after the warm-up: with keep-alive the warm socket carries everything.
    const create = agent.createConnection.bind(agent);
    agent.createConnection = ((...args: Parameters<typeof create>) => {
      s.sockets++;
      return create(...args);
    }) as typeof agent.createConnection;
    return s;
  });
  try {
    let id = 0;
    for (const s of state) for (let i = 0; i < opts.warmup; i++) await post(s.url, s.agent, id++, 10_000);
    for (const s of state) s.sockets = 0;
    const perRound = Math.max(1, Math.ceil(opts.requests / opts.rounds));
    const t0 = performance.now();
    for (let r = 0; r < opts.rounds && performance.now() - t0 < opts.budgetMs; r++) {
      for (const s of state) {
        for (let i = 0; i < perRound && s.samples.length < opts.requests && performance.now() - t0 < opts.budgetMs; i++) {
          const start = performance.now();
          await post(s.url, s.agent, id++, 10_000);
          s.samples.push(performance.now() - start);
        }
      }
    }
    const out = {} as Record<K, RpcLatency>;
    for (const s of state) out[s.key] = { url: urls[s.key], ms: summarize(s.samples), requests: s.samples.length, connections: s.sockets };
    return out;
  } finally {
    for (const s of state) s.agent.destroy();
  }
}
