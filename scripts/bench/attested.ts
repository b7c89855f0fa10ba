/**
 * The "attested connections" phase (issue 14): many clients start at once against `serve` whose
 * dev provider takes `quoteLatency` per quote, one at a time, as real hardware does. Each client
 * is a separate connection through the project's own connector (`attestedFetch`, exporter
 * freshness, one 1 KB request), all from one address under the default shares, so the phase also
 * shows that a share does not throttle an honest burst.
 *
 * Reported: the time until every client is verified, attested connections per second, the quotes
 * the burst cost (serve's metrics) and any share refusals; beside it, in the same run against the
 * same serve, plain TLS full handshakes per second with the same burst shape (the same number of
 * connections at once, from this process, no session offered: none can resume).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { Agent, fetch as undiciFetch } from "undici";
import { attestedFetch } from "../../proxy/client/connector.js";
import { loadPolicy } from "../../proxy/evidence/policy.js";
import { loadConfig } from "../../proxy/server/config.js";
import { cpuDuring, freePort, LOOPBACK, waitForMatch, type Children } from "./proc.js";
import { percentile } from "./stats.js";

export interface AttestedResult {
  clients: number;
  quoteLatencyMs: number;
  /** Clients whose verdict was trusted. */
  verified: number;
  /** The first few failures, as the verdict or the error said them. */
  failures: string[];
  /** When clients were verified, ms from the start: the first, the median, the 90th percentile. */
  verifiedAtMs: { first: number; p50: number; p90: number } | null;
  /** From the first connect to the last trusted verdict, ms (null unless every client was verified). */
  allVerifiedMs: number | null;
  attestedPerSec: number | null;
  /** Fresh-evidence quotes serve made for the burst (null when its metrics were unreadable). */
  quotes: number | null;
  /** Fresh-evidence requests refused by a share or the cap during the burst. */
  refusals: number | null;
  /** Plain TLS: each round's handshakes per second (same burst, same serve), and their median. */
  plainRounds: number[];
  plainHandshakesPerSec: number;
  /** CPU ms per connection of serve and of this (client) process, attested and plain (null: unreadable). */
  cpuMsPerConnection: { serveAttested: number | null; servePlain: number | null; clientAttested: number; clientPlain: number };
  /**
   * Like-for-like beside the attested burst: the same clients, request and fetch (undici's, a
   * connection each, closed after the answer) over plain TLS without any attestation. The
   * attested figures minus these are what attestation itself costs; the target stays against
   * bare handshakes, as the issue sets it.
   */
  plainRequest: { perSec: number; serveCpuMs: number | null; clientCpuMs: number; failures: number };
}

export interface AttestedOptions {
  cli: string;
  dir: string;
  upstreamPort: number;
  clients: number;
  quoteLatencyMs: number;
  plainRounds: number;
  timeoutMs: number;
}

/** `serve` with the dev provider paced, default shares, and a metrics listener this phase reads. */
async function startPacedServe(children: Children, o: AttestedOptions): Promise<{ base: string; metrics: string; devDir: string; pid: number; stop: () => Promise<void> }> {
  mkdirSync(o.dir, { recursive: true });
  const devDir = join(o.dir, "dev");
  const metricsPort = await freePort();
  const file = join(o.dir, "serve-attested.yaml");
  writeFileSync(
    file,
    [
      "# written by scripts/bench/attested.ts for one benchmark run",
      `listen: "${LOOPBACK}:0"`,
      "attestation:",
      "  provider: dev",
      `  dev: { dir: ${JSON.stringify(devDir)}, quoteLatency: ${o.quoteLatencyMs}ms }`,
      "upstream:",
      `  url: "http://${LOOPBACK}:${o.upstreamPort}"`,
      `metrics: { listen: "${LOOPBACK}:${metricsPort}" }`,
      "log: { level: warn }",
      "shutdown: { drain: 1s }",
      "",
    ].join("\n"),
  );
  await loadConfig({ file, env: {} });
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ATTESTABLE_MCP_")));
  const proc = children.spawn("serve (paced quotes)", process.execPath, [o.cli, "serve", "--config", file], { env });
  try {
    const m = await waitForMatch(proc.child.stderr!, /serving https:\/\/127\.0\.0\.1:(\d+)/, 60_000, "serve (paced quotes)");
    return { base: `https://${LOOPBACK}:${m[1]}`, metrics: `http://${LOOPBACK}:${metricsPort}/metrics`, devDir, pid: proc.pid, stop: () => children.stop(proc) };
  } catch (e) {
    await children.stop(proc);
    throw e;
  }
}

/** The sum of a Prometheus counter's samples whose labels include `labels` (null: unreadable). */
async function counter(url: string, name: string, labels: string): Promise<number | null> {
  try {
    const text = await (await fetch(url)).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (labels && !line.includes(labels)) continue;
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return sum;
  } catch {
    return null;
  }
}

/** `n` TLS connections at once, no session offered; handshakes per second until the last completes. */
async function plainBurst(base: string, n: number, timeoutMs: number): Promise<number> {
  const port = Number(new URL(base).port);
  const secureContext = tls.createSecureContext({ minVersion: "TLSv1.3" });
  const sockets: tls.TLSSocket[] = [];
  const t0 = performance.now();
  let resumed = 0;
  try {
    await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<void>((resolve, reject) => {
            const s = tls.connect({ host: LOOPBACK, port, secureContext, rejectUnauthorized: false }, () => {
              if (s.isSessionReused()) resumed++;
              resolve();
            });
            sockets.push(s);
            s.setTimeout(timeoutMs, () => s.destroy(new Error("plain handshake timed out")));
            s.once("error", reject);
          }),
      ),
    );
    if (resumed > 0) throw new Error(`${resumed} plain handshakes resumed a session`);
    return n / ((performance.now() - t0) / 1000);
  } finally {
    for (const s of sockets) {
      s.on("error", () => {});
      s.destroy();
    }
  }
}

/** `n` plain-TLS clients at once, each one connection and one request through undici's fetch. */
async function plainRequestBurst(base: string, n: number, timeoutMs: number): Promise<{ perSec: number; failures: number }> {
  // A fresh connection per request, as the attested burst's `connection: close` makes them, and
  // one TLS context for all, as the connector has (without it each connection builds its own).
  const secureContext = tls.createSecureContext({});
  const agent = new Agent({ connect: { rejectUnauthorized: false, timeout: timeoutMs, secureContext }, pipelining: 0 });
  let failures = 0;
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: n }, async () => {
        try {
          const res = await undiciFetch(`${base}/1k`, { headers: { connection: "close" }, dispatcher: agent });
          await res.arrayBuffer();
          if (res.status !== 200) failures++;
        } catch {
          failures++;
        }
      }),
    );
    return { perSec: n / ((performance.now() - t0) / 1000), failures };
  } finally {
    await agent.close();
  }
}

export async function measureAttested(children: Children, o: AttestedOptions): Promise<AttestedResult> {
  const serve = await startPacedServe(children, o);
  try {
    // The policy serve wrote beside its dev root: this root, this MRENCLAVE, exporter freshness.
    const policyFile = join(serve.devDir, "policy.yaml");
    if (!/freshness: exporter/.test(readFileSync(policyFile, "utf8"))) throw new Error(`${policyFile} does not ask for exporter freshness`);
    const policy = await loadPolicy(policyFile);

    // One connection to warm both ends (code paths, serve's first quote) before either burst.
    await plainBurst(serve.base, 1, o.timeoutMs);
    const plainRounds: number[] = [];
    const clientCpu = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    let c0 = clientCpu();
    const plainServe = await cpuDuring(serve.pid, async () => {
      for (let i = 0; i < o.plainRounds; i++) plainRounds.push(await plainBurst(serve.base, o.clients, o.timeoutMs));
    });
    const plainConns = o.clients * o.plainRounds;
    const clientPlain = (clientCpu() - c0) / plainConns;

    const quotes0 = await counter(serve.metrics, "attestable_mcp_quotes_total", 'purpose="nonce"');
    const refused0 = await counter(serve.metrics, "attestable_mcp_share_refusals_total", 'resource="evidence"');
    let verified = 0;
    let lastOk = 0;
    const okAt: number[] = [];
    const failures: string[] = [];
    const fetchAttested = attestedFetch({
      policy,
      connectTimeoutMs: o.timeoutMs,
      onVerdict: (v) => {
        if (v.ok) {
          verified++;
          lastOk = performance.now();
          okAt.push(lastOk - t0);
        } else if (failures.length < 5) failures.push(`${v.failed?.check}: ${v.failed?.reason}`);
      },
    });
    c0 = clientCpu();
    const t0 = performance.now();
    const attestedServe = await cpuDuring(serve.pid, async () => {
      await Promise.all(
        Array.from({ length: o.clients }, async () => {
          try {
            const res = await fetchAttested(`${serve.base}/1k`, { headers: { connection: "close" } });
            await res.arrayBuffer();
          } catch (e) {
            if (failures.length < 5) failures.push((e as Error).message);
          }
        }),
      );
    }).finally(() => fetchAttested.close());
    const clientAttested = (clientCpu() - c0) / o.clients;
    c0 = clientCpu();
    const plainReq = await cpuDuring(serve.pid, () => plainRequestBurst(serve.base, o.clients, o.timeoutMs));
    const plainRequest = {
      perSec: plainReq.result.perSec,
      serveCpuMs: plainReq.cpuS === null ? null : (plainReq.cpuS * 1000) / o.clients,
      clientCpuMs: (clientCpu() - c0) / o.clients,
      failures: plainReq.result.failures,
    };
    const quotes1 = await counter(serve.metrics, "attestable_mcp_quotes_total", 'purpose="nonce"');
    const refused1 = await counter(serve.metrics, "attestable_mcp_share_refusals_total", 'resource="evidence"');
    const allVerifiedMs = verified === o.clients ? lastOk - t0 : null;
    const verifiedAtMs = okAt.length === 0 ? null : { first: Math.min(...okAt), p50: percentile(okAt, 50), p90: percentile(okAt, 90) };
    return {
      clients: o.clients,
      quoteLatencyMs: o.quoteLatencyMs,
      verified,
      failures,
      verifiedAtMs,
      allVerifiedMs,
      attestedPerSec: allVerifiedMs === null ? null : o.clients / (allVerifiedMs / 1000),
      quotes: quotes0 === null || quotes1 === null ? null : quotes1 - quotes0,
      refusals: refused0 === null || refused1 === null ? null : refused1 - refused0,
      plainRounds,
      plainHandshakesPerSec: percentile(plainRounds, 50),
      cpuMsPerConnection: {
        serveAttested: attestedServe.cpuS === null ? null : (attestedServe.cpuS * 1000) / o.clients,
        servePlain: plainServe.cpuS === null ? null : (plainServe.cpuS * 1000) / plainConns,
        clientAttested,
        clientPlain,
      },
      plainRequest,
    };
  } finally {
    await serve.stop();
  }
}
