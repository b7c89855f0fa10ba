/** serve (dev provider) in-process, policies against it, and an HTTP upstream that counts requests. */
import { writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { pino } from "pino";
import { DevProvider } from "../../proxy/attest/dev/provider.js";
import { loadConfig } from "../../proxy/server/config.js";
import { buildPolicy, type Policy } from "../../proxy/evidence/policy.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { startServer, type RunningServer } from "../../proxy/server/listener.js";
import { servedCertificate } from "../support/tls-client.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { tempDir } from "../support/wait.js";

export interface Served {
  running: RunningServer;
  provider: DevProvider;
  /** The dev root's PEM file, as a policy names it. */
  rootPath: string;
  base: string;
  /** The MRENCLAVE in the evidence the server serves (read from it, not from the provider). */
  mrenclave: string;
  /** Scratch directory for policy and collateral files. */
  dir: string;
  close(): Promise<void>;
}

export async function startDevServe(upstreamYaml: string, endpointYaml = "{ quotesPerMinute: 10000 }"): Promise<Served> {
  const dir = tempDir("amcp-conn-");
  const devDir = join(dir, "dev");
  const file = join(dir, "serve.yaml");
  writeFileSync(
    file,
    `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nattestationEndpoint: ${endpointYaml}\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n${upstreamYaml}`,
  );
  const config = await loadConfig({ file });
  const provider = await DevProvider.open({ dir: devDir, warn: () => {} });
  const running = await startServer(config, provider, pino({ level: "silent" }));
  const rootPath = join(devDir, "root.pem");
  const v = await verifyRaTlsCertificate(await servedCertificate("127.0.0.1", running.address.port), { trustRoots: [await readFile(rootPath, "utf8")] });
  if (!v.ok || v.quote?.teeType !== "SGX") throw new Error(`the served certificate does not verify: ${JSON.stringify(v.failed)}`);
  return { running, provider, rootPath, base: `https://127.0.0.1:${running.address.port}`, mrenclave: v.quote.mrenclave, dir, close: () => running.close() };
}

/** The policy that trusts this dev server, with `override` merged over it (top-level keys). */
export function policyDoc(s: Served, override: Record<string, unknown> = {}): Record<string, unknown> {
  return { trustRoots: [s.rootPath], measurements: [{ mrenclave: s.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter", ...override };
}

export function policyFor(s: Served, override: Record<string, unknown> = {}): Promise<Policy> {
  return buildPolicy(policyDoc(s, override), "(test policy)", s.dir, (p) => readFile(p, "utf8"));
}

/**
 * The exporter policy that trusts a running dev serve on `port`: the MRENCLAVE read from the
 * certificate it serves, the dev root at `dir`/dev/root.pem.
 */
export async function servedPolicy(port: number, rootPem: string, dir: string): Promise<Policy> {
  const sv = await verifyRaTlsCertificate(await servedCertificate("127.0.0.1", port), { trustRoots: [rootPem] });
  if (sv.quote?.teeType !== "SGX") throw new Error(`the served certificate carries no SGX quote: ${JSON.stringify(sv.failed)}`);
  const doc = { trustRoots: ["dev/root.pem"], measurements: [{ mrenclave: sv.quote.mrenclave }], allowDebug: true, tcb: { require: false }, freshness: "exporter" };
  return buildPolicy(doc, "(test)", dir, (p) => readFile(p, "utf8"));
}

export interface CountingUpstream extends Upstream {
  /** Every request the upstream received, as "METHOD path". */
  seen: string[];
}

/** An HTTP upstream that records every request and answers 200 {"ok":true} after `delayMs`. */
export async function countingUpstream(delayMs = 0): Promise<CountingUpstream> {
  const seen: string[] = [];
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () =>
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"ok":true}');
      }, delayMs),
    );
  });
  return Object.assign(up, { seen });
}
