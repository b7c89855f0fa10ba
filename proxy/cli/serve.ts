/**
 * `serve`: load the config, open the attestation provider (never falling back from gramine or
 * tdx to dev), start the attested listener, say how to check it, and shut down gracefully on
 * SIGTERM / SIGINT (exit 0 once drained). With `workers` > 1 this process becomes the cluster primary and
 * every worker runs the same path with its own key and certificate (server/cluster.ts).
 */
import { rename, rm, writeFile } from "node:fs/promises";
import { join, resolve as absolute } from "node:path";
import { pino, type Logger } from "pino";
import { PacedProvider, paced } from "../attest/paced.js";
import type { AttestationProvider } from "../attest/provider.js";
import { loadConfig, type Config, type ConfigInputs } from "../server/config.js";
import { isWorker, reportListening, runPrimary, workerId, workerStopRequested } from "../server/cluster.js";
import { startServer } from "../server/listener.js";

// Each provider is loaded only when the config names it: an enclave never carries the dev PKI.
export async function openProvider(config: Config, log: Logger): Promise<AttestationProvider> {
  if (config.attestation.provider === "gramine") return (await import("../attest/gramine.js")).GramineProvider.open(config.attestation.gramineDir);
  if (config.attestation.provider === "tdx") return (await import("../attest/tdx.js")).TdxProvider.open(config.attestation.tdxDir);
  const { DevProvider } = await import("../attest/dev/provider.js");
  return paced(await DevProvider.open({ dir: config.attestation.devDir, tee: config.attestation.devTee, warn: (m) => log.warn(m) }), config.attestation.devQuoteLatencyMs);
}

/** What a dev start tells its first client: the served measurement and a policy that admits it. */
interface DevFirstRun {
  /** MRENCLAVE of a dev enclave, MRTD of a dev trust domain. */
  field: "mrenclave" | "mrtd";
  /** Hex. */
  measurement: string;
  /** The policy file written beside the dev root; null when it could not be written. */
  policyFile: string | null;
}

/** The dev policy for one MRENCLAVE (or MRTD), as configs/policy.dev.yaml describes it. */
function devPolicyYaml(rootPem: string, dev: Pick<DevFirstRun, "field" | "measurement">): string {
  return [
    "# Made by `attestable-mcp serve` (dev provider) at start: it trusts this dev server's code only.",
    `# NOT Intel-rooted, DEBUG ${dev.field === "mrtd" ? "trust domain" : "enclave"}: for development, never production (configs/policy.dev.yaml).`,
    `trustRoots: [${JSON.stringify(rootPem)}]`,
    `measurements: [{ ${dev.field}: "${dev.measurement}" }]`,
    "allowDebug: true         # dev quotes are marked DEBUG",
    "tcb: { require: false }  # no Intel collateral exists for the dev PKI",
    "freshness: exporter",
    "",
  ].join("\n");
}

/**
 * With the dev provider, write the policy for the MRENCLAVE (a dev TD: the MRTD) the provider
 * quotes into the dev directory (beside root.pem), so that the banner's `verify` command works as
 * printed. Rewritten at every start: any change to the compiled code changes the dev measurement.
 */
async function devFirstRun(config: Config, opened: AttestationProvider, log: Logger): Promise<DevFirstRun | null> {
  if (config.attestation.provider !== "dev") return null;
  const { DevProvider } = await import("../attest/dev/provider.js");
  const provider = opened instanceof PacedProvider ? opened.inner : opened;
  if (!(provider instanceof DevProvider)) return null;
  const measured: Pick<DevFirstRun, "field" | "measurement"> = provider.td
    ? { field: "mrtd", measurement: Buffer.from(provider.td.mrtd).toString("hex") }
    : { field: "mrenclave", measurement: Buffer.from(provider.mrenclave).toString("hex") };
  const policyFile = join(config.attestation.devDir, "policy.yaml");
  // Renamed into place: a client reading it while another dev serve writes it never sees half a file.
  const tmp = `${policyFile}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, devPolicyYaml("root.pem", measured));
    await rename(tmp, policyFile);
    return { ...measured, policyFile };
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    log.warn({ err: (e as Error).message, file: policyFile }, "cannot write the dev policy; the banner shows it instead");
    return { ...measured, policyFile: null };
  }
}

function banner(config: Config, address: { host: string; port: number }, workers: number, dev: DevFirstRun | null): string {
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  const base = `https://${host}:${address.port}`;
  const mcp = config.upstream.kind === "stdio" ? `${base}/mcp (Streamable HTTP) and ${base}/sse (legacy SSE)` : `${base}/ (forwarded to ${config.upstream.url})`;
  const root = join(config.attestation.devDir, "root.pem");
  const verify = `node_modules/.bin/attestable-mcp verify ${base}/mcp --policy`;
  const lines = [`attestable-mcp: serving ${mcp} with ${config.attestation.provider} attestation${workers > 1 ? ` (${workers} workers, each with its own key and certificate)` : ""}`];
  if (dev) lines.push(`  measurement:         ${dev.field} ${dev.measurement} (dev: DEBUG ${dev.field === "mrtd" ? "TD" : "enclave"}, rooted at ${root}, not at Intel)`);
  lines.push(
    `  check its evidence:  openssl s_client -connect ${host}:${address.port} </dev/null 2>/dev/null | openssl x509 > cert.pem`,
    `                       node_modules/.bin/attestable-mcp inspect cert.pem${dev ? ` --trust-root ${root}` : ""}`,
  );
  if (!dev) lines.push(`  verify it:           ${verify} POLICY.yaml`);
  else if (dev.policyFile) lines.push(`  verify it:           ${verify} ${dev.policyFile}`, `                       (a dev policy written at start: this dev root, this ${dev.field.toUpperCase()})`);
  else
    lines.push(
      `  verify it:           ${verify} policy.yaml   with policy.yaml:`,
      ...devPolicyYaml(absolute(root), dev)
        .trimEnd()
        .split("\n")
        .map((l) => `                         ${l}`),
    );
  lines.push(
    `  fresh evidence:      curl -sk '${base}/.well-known/attestation?nonce=0123456789abcdef'`,
    `  health / metrics:    curl -sk ${base}/healthz${config.metrics.listen ? `   curl -s http://${config.metrics.listen.host}:${config.metrics.listen.port}/metrics` : ""}`,
  );
  return lines.join("\n");
}

function logger(config: Config): Logger {
  const base = isWorker() ? { service: "attestable-mcp", worker: workerId() } : { service: "attestable-mcp" };
  // Asynchronous: one line per request is still written, but by batched writes off the request
  // path, not one blocking write(2) each; pino flushes what is pending when the process exits.
  return pino({ level: config.log.level, base }, pino.destination({ dest: 1, sync: false }));
}

export async function serve(inputs: ConfigInputs): Promise<number> {
  const config = await loadConfig(inputs);
  const log = logger(config);
  if (config.workers > 1 && !isWorker()) return servePrimary(config, log);
  const provider = await openProvider(config, log);
  // Workers open no metrics listener: the primary serves their aggregate.
  let running: Awaited<ReturnType<typeof startServer>>;
  try {
    running = await startServer(isWorker() ? { ...config, metrics: { listen: null } } : config, provider, log);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, "could not start");
    // startServer closes what it opened; anything else still holding the loop (a provider's
    // handle, a pending log write) must not keep a proxy that does not serve alive.
    setTimeout(() => process.exit(1), 2000).unref();
    throw e;
  }
  if (isWorker()) {
    const { AggregatorRegistry } = await import("prom-client");
    AggregatorRegistry.setRegistries([running.metrics.registry]);
    // prom-client installs the worker's answer to the primary's metrics requests only when an
    // AggregatorRegistry is constructed; this one is never read.
    new AggregatorRegistry();
    reportListening({ address: running.address, certificateSha256: running.identity.current.fingerprint });
    const why = await workerStopRequested();
    log.info({ signal: why }, "shutting down");
    await running.close().catch((e: unknown) => log.error({ err: (e as Error).message }, "error while shutting down"));
    // The IPC channel would keep this process alive after the drain.
    if (process.connected) process.disconnect();
    return 0;
  }
  const dev = await devFirstRun(config, provider, log);
  process.stderr.write(banner(config, running.address, 1, dev) + "\n");
  log.info({ listen: running.address, provider: provider.name, certificateSha256: running.identity.current.fingerprint }, "serving");
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      running.close().then(resolve, (e: unknown) => {
        log.error({ err: (e as Error).message }, "error while shutting down");
        resolve();
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  return 0;
}

async function servePrimary(config: Config, log: Logger): Promise<number> {
  // Opened here once, before any fork: the dev PKI is created by one process, and a missing
  // /dev/attestation fails now. The primary itself mints no key and produces no quote.
  const provider = await openProvider(config, log);
  const dev = await devFirstRun(config, provider, log);
  const metricsAt = config.metrics.listen;
  return runPrimary({
    workers: config.workers,
    drainMs: config.shutdown.drainMs,
    log,
    onListening: (ws) => {
      process.stderr.write(banner(config, ws[0]!.address, config.workers, dev) + "\n");
      log.info({ listen: ws[0]!.address, provider: provider.name, workers: ws.length, certificateSha256: ws.map((w) => w.certificateSha256) }, "serving");
    },
    ...(metricsAt
      ? {
          startMetrics: async () => {
            const [{ AggregatorRegistry }, { startMetricsEndpoint }] = await Promise.all([import("prom-client"), import("../server/metrics.js")]);
            const aggregate = new AggregatorRegistry();
            const server = await startMetricsEndpoint({ text: () => aggregate.clusterMetrics(), contentType: aggregate.contentType }, metricsAt.host, metricsAt.port);
            return () => new Promise<void>((r) => server.close(() => r()));
          },
        }
      : {}),
  });
}
