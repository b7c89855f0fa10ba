/**
 * `attestable-mcp-proxy/server`: running the proxy from code, as `attestable-mcp serve` does.
 * `loadConfig` reads and validates a config from a file, an environment and `--set` pairs, by the
 * same rules as the CLI; `startServer` starts the attested listener with that config, a provider
 * from `attestable-mcp-proxy/attest` (or `/dev`) and a pino logger, and returns a handle whose
 * `close()` drains gracefully. One listener in this process: forking `workers` and handling
 * signals stay with the CLI.
 */
export { startServer } from "../server/listener.js";
export type { RunningServer } from "../server/listener.js";
export { loadConfig } from "../server/config.js";
export type { Config, ConfigInputs } from "../server/config.js";
export { ConfigError, ClientPolicyError } from "../core/errors.js";
export type { ConfigCode } from "../core/errors.js";
