/**
 * `serve`: load the config, open the attestation provider (never falling back from gramine to
 * dev), start the attested listener, say how to check it, and shut down gracefully on SIGTERM /
 * SIGINT (exit 0 once drained).
 */
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { DevProvider } from "./attest/dev.js";
import { GramineProvider } from "./attest/gramine.js";
import type { AttestationProvider } from "./attest/provider.js";
import { loadConfig, type Config, type ConfigInputs } from "./config.js";
import { startServer, type RunningServer } from "./server/listener.js";

export async function openProvider(config: Config, log: Logger): Promise<AttestationProvider> {
  if (config.attestation.provider === "gramine") return GramineProvider.open(config.attestation.gramineDir);
  return DevProvider.open({ dir: config.attestation.devDir, warn: (m) => log.warn(m) });
}

function banner(config: Config, s: RunningServer): string {
  const host = s.address.host.includes(":") ? `[${s.address.host}]` : s.address.host;
  const base = `https://${host}:${s.address.port}`;
  const mcp = config.upstream.kind === "stdio" ? `${base}/mcp (Streamable HTTP) and ${base}/sse (legacy SSE)` : `${base}/ (forwarded to ${config.upstream.url})`;
  const trust = config.attestation.provider === "dev" ? ` --trust-root ${join(config.attestation.devDir, "root.pem")}` : "";
  return [
    `attestable-mcp: serving ${mcp} with ${config.attestation.provider} attestation`,
    `  check its evidence:  openssl s_client -connect ${host}:${s.address.port} </dev/null 2>/dev/null | openssl x509 > cert.pem`,
    `                       node_modules/.bin/attestable-mcp inspect cert.pem${trust}`,
    `  fresh evidence:      curl -sk '${base}/.well-known/attestation?nonce=0123456789abcdef'`,
    `  health / metrics:    curl -sk ${base}/healthz${config.metrics.listen ? `   curl -s http://${config.metrics.listen.host}:${config.metrics.listen.port}/metrics` : ""}`,
  ].join("\n");
}

export async function serve(inputs: ConfigInputs): Promise<number> {
  const config = await loadConfig(inputs);
  const log = pino({ level: config.log.level, base: { service: "attestable-mcp" } });
  const provider = await openProvider(config, log);
  const running = await startServer(config, provider, log);
  process.stderr.write(banner(config, running) + "\n");
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
