/**
 * Configuration: a YAML file, then ATTESTABLE_MCP_* environment variables, then flags
 * (`--listen`, `--log-level`, `--set key.path=value`), validated once into a typed Config.
 * Every error names the key, where it came from (file, variable or flag) and why; `serve` exits 2.
 *
 * Fail closed: unknown keys are errors, an upstream must be exactly one of url / command, a TCP
 * upstream must be on loopback, and under the gramine provider a TCP upstream (which crosses the
 * host kernel in clear) needs `upstream.allowPlaintextLoopback: true` written out.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { parse as parseYaml, parseDocument } from "yaml";
import { ClientPolicyError, ConfigError, PolicyError } from "../core/errors.js";
import { isLoopback, unbracket, valueParsers } from "../core/schema.js";
import { loadPolicy, type Policy } from "../evidence/policy.js";
import { normalHost, normalOrigin } from "./upstream/stdio/origin.js";
import { attestationEndpointOf, connectionLimitsOf, sessionLimitsOf } from "./config-shares.js";
import { authOf, type AuthConfig } from "./config-auth.js";
import { attestationOf, type AttestationConfig } from "./config-attestation.js";

export { ConfigError };

export type Upstream =
  | { kind: "http"; host: string; port: number; url: string }
  | { kind: "unix"; path: string; url: string }
  | {
      kind: "stdio";
      command: string[];
      env: Record<string, string>;
      cwd: string | null;
      /** upstream.maxMessageSize, .allowedOrigins, .publicHosts (null: the listen address's names): see docs/configuration.md. */
      maxMessageSize: number;
      allowedOrigins: string[];
      publicHosts: string[] | null;
      /** Long-lived children shared by every MCP 2026-07-28 client. */
      modernChildren: number;
    };

export interface Config {
  source: string;
  listen: { host: string; port: number };
  tls: { minVersion: "TLSv1.2" | "TLSv1.3" };
  attestation: AttestationConfig;
  certificate: { keyType: "P-384" | "P-256"; lifetimeMs: number };
  upstream: Upstream & {
    /** Host header sent upstream (upstream.host); null: the client's. */
    hostHeader: string | null;
    allowPlaintextLoopback: boolean;
    /** upstream.maxSessions, .maxSessionsPerClient (null: half), .initTimeout: sessions.ts. */
    maxSessions: number;
    maxSessionsPerClient: number;
    initTimeoutMs: number;
    sessionIdleMs: number;
    bodyLimit: number;
    idleTimeoutMs: number;
    /** upstream.headersTimeout; null (the default): no deadline on the response head, upstream.idleTimeout guards a hung upstream. */
    headersTimeoutMs: number | null;
  };
  /** Fresh quotes: the process's cap and each client's share (at most the cap). */
  attestationEndpoint: { quotesPerMinute: number; quotesPerClientPerMinute: number };
  metrics: { listen: { host: string; port: number } | null };
  log: { level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent" };
  shutdown: { drainMs: number };
  /** Processes serving the one port (node:cluster); 1 = a single process, no primary. */
  workers: number;
  /** Client-side bounds on the attested port, before anything is routed. */
  /** maxHeaders: header lines (431 past it); maxConnections and each address's share of them. */
  limits: { handshakeTimeoutMs: number; headersTimeoutMs: number; maxHeaderSize: number; maxHeaders: number; maxConnections: number; maxConnectionsPerClient: number };
  /** Mutual attestation; `policy` is loaded by loadConfig (null when mode is off). */
  clientAttestation: { mode: "off" | "optional" | "required"; policyFile: string | null; policySource: string; policy: Policy | null };
  /** Who may call (config-auth.ts): bearer keys are read at load. */
  auth: AuthConfig;
}

/** Every key a config may hold, with its default. `undefined` marks keys with no default. */
const DEFAULTS = {
  listen: "127.0.0.1:8443",
  "tls.minVersion": "TLSv1.3",
  "attestation.provider": undefined,
  "attestation.dev.dir": ".attestable-mcp/dev",
  "attestation.dev.tee": "sgx",
  "attestation.dev.quoteLatency": 0,
  "attestation.gramine.dir": "/dev/attestation",
  "attestation.tdx.dir": "/sys/kernel/config/tsm/report",
  "certificate.keyType": "P-384",
  "certificate.lifetime": "24h",
  "upstream.url": null,
  "upstream.command": null,
  "upstream.env": {},
  "upstream.cwd": null,
  "upstream.maxMessageSize": "64MiB",
  "upstream.allowedOrigins": [],
  "upstream.publicHosts": null,
  "upstream.modernChildren": 1,
  "upstream.host": null,
  "upstream.allowPlaintextLoopback": false,
  "upstream.maxSessions": 32,
  "upstream.maxSessionsPerClient": null,
  "upstream.initTimeout": "30s",
  "upstream.sessionIdle": "30m",
  "upstream.bodyLimit": "4MiB",
  "upstream.idleTimeout": "5m",
  // A 2026-07-28 server sends its response head with the result: a head deadline would cut quiet calls.
  "upstream.headersTimeout": null,
  "attestationEndpoint.quotesPerMinute": 600,
  "attestationEndpoint.quotesPerClientPerMinute": 60,
  "metrics.listen": "127.0.0.1:9464",
  "log.level": "info",
  "shutdown.drain": "10s",
  workers: 1,
  "limits.handshakeTimeout": "30s",
  "limits.headersTimeout": "30s",
  "limits.maxHeaderSize": "16KiB",
  "limits.maxHeaders": 100,
  // sys.fds.limit (4096) with a margin: docs/operations.md#shares-and-caps. The share's null: half.
  "limits.maxConnections": 1500,
  "limits.maxConnectionsPerClient": null,
  "clientAttestation.mode": "off",
  "clientAttestation.policy": null,
  "auth.mode": "none",
  "auth.bearer.keysFile": null,
  "auth.oauth.issuer": null,
  "auth.oauth.jwksUrl": null,
  "auth.oauth.audience": null,
  "auth.oauth.scopes": [],
} as const satisfies Record<string, unknown>;

type Key = keyof typeof DEFAULTS;
const KEYS = Object.keys(DEFAULTS) as Key[];

/** ATTESTABLE_MCP_UPSTREAM_ALLOW_PLAINTEXT_LOOPBACK ↔ upstream.allowPlaintextLoopback */
export function envName(key: string): string {
  return (
    "ATTESTABLE_MCP_" +
    key
      .replace(/\./g, "_")
      .replace(/([a-z])([A-Z])/g, "$1_$2")
      .toUpperCase()
  );
}

type Raw = Map<Key, { value: unknown; source: string }>;

/** Flatten a YAML document into dotted keys, refusing keys we do not know. */
function flatten(obj: unknown, source: string, prefix: string, out: Raw): void {
  if (obj === null || obj === undefined) return;
  if (typeof obj !== "object" || Array.isArray(obj)) throw new ConfigError(prefix || "(top level)", source, "expected a mapping");
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if ((KEYS as string[]).includes(key)) {
      out.set(key as Key, { value: v, source });
    } else if (key === "metrics" && v === null) {
      // `metrics: null` says "no metrics" as plainly as `metrics.listen: null` does.
      out.set("metrics.listen", { value: null, source });
    } else if (KEYS.some((known) => known.startsWith(`${key}.`))) {
      flatten(v, source, key, out);
    } else {
      throw new ConfigError(key, source, "unknown key");
    }
  }
}

function fail(key: string, source: string, reason: string): never {
  throw new ConfigError(key, source, reason);
}

const { duration, size, int, str, oneOf, bool, hostPort, url: parseUrl } = valueParsers(fail);

/** A list of strings each of which `valid` accepts (null: refused, naming `what` it must be). */
function listOf(key: string, v: unknown, source: string, valid: (s: string) => string | null, what: string): string[] {
  if (!Array.isArray(v)) fail(key, source, `expected a list, got ${JSON.stringify(v)}`);
  for (const x of v) if (typeof x !== "string" || valid(x) === null) fail(key, source, `${JSON.stringify(x)} is not ${what}`);
  return v as string[];
}

/** Node's HTTP parser takes any positive size; below 1 KiB no real request fits, above 1 MiB is no limit. */
function headerSize(v: unknown, source: string): number {
  const n = size("limits.maxHeaderSize", v, source);
  if (n < 1024 || n > 1024 ** 2) fail("limits.maxHeaderSize", source, `expected 1KiB..1MiB, got ${JSON.stringify(v)}`);
  return n;
}

function upstreamOf(raw: Raw, get: (k: Key) => unknown, src: (k: Key) => string): Upstream {
  const url = get("upstream.url");
  const command = get("upstream.command");
  if ((url === null) === (command === null)) {
    fail("upstream", src(url === null ? "upstream.url" : "upstream.command"), "exactly one of upstream.url and upstream.command must be set");
  }
  if (command !== null) {
    if (!Array.isArray(command) || command.length === 0 || !command.every((x) => typeof x === "string" && x.length > 0)) {
      fail("upstream.command", src("upstream.command"), "expected a non-empty list of strings (argv)");
    }
    const env = get("upstream.env");
    if (env === null || typeof env !== "object" || Array.isArray(env) || !Object.values(env as object).every((x) => typeof x === "string")) {
      fail("upstream.env", src("upstream.env"), "expected a mapping of strings");
    }
    const cwd = get("upstream.cwd");
    const hosts = get("upstream.publicHosts");
    return {
      kind: "stdio",
      command: command as string[],
      env: env as Record<string, string>,
      cwd: cwd === null ? null : str("upstream.cwd", cwd, src("upstream.cwd")),
      maxMessageSize: size("upstream.maxMessageSize", get("upstream.maxMessageSize"), src("upstream.maxMessageSize")),
      allowedOrigins: listOf("upstream.allowedOrigins", get("upstream.allowedOrigins"), src("upstream.allowedOrigins"), normalOrigin, "an origin: scheme://host[:port], no path"),
      publicHosts: hosts === null ? null : listOf("upstream.publicHosts", hosts, src("upstream.publicHosts"), normalHost, "a host name or address, no port"),
      modernChildren: int("upstream.modernChildren", get("upstream.modernChildren"), src("upstream.modernChildren"), 1, 64),
    };
  }
  for (const k of ["upstream.env", "upstream.cwd", "upstream.maxMessageSize", "upstream.allowedOrigins", "upstream.publicHosts", "upstream.modernChildren"] as const) {
    if (raw.has(k)) fail(k, src(k), "only applies to upstream.command");
  }
  const u = str("upstream.url", url, src("upstream.url"));
  if (u.startsWith("unix:")) {
    const path = u.slice(5);
    if (!path.startsWith("/")) fail("upstream.url", src("upstream.url"), `unix socket path must be absolute, got "${path}"`);
    return { kind: "unix", path, url: u };
  }
  const parsed = parseUrl("upstream.url", u, src("upstream.url"), "http://127.0.0.1:PORT or unix:/path");
  if (parsed.protocol !== "http:") fail("upstream.url", src("upstream.url"), `scheme must be http: (or unix:), got ${parsed.protocol}`);
  if (parsed.pathname !== "/" || parsed.search || parsed.username) fail("upstream.url", src("upstream.url"), "must be http://HOST:PORT with no path, query or credentials");
  const host = unbracket(parsed.hostname);
  if (!isLoopback(host)) fail("upstream.url", src("upstream.url"), `the upstream runs beside the proxy: host must be loopback, got "${host}"`);
  return { kind: "http", host, port: Number(parsed.port || 80), url: u };
}

function clientAttestationOf(raw: Raw, get: (k: Key) => unknown, src: (k: Key) => string): Config["clientAttestation"] {
  const mode = oneOf("clientAttestation.mode", get("clientAttestation.mode"), src("clientAttestation.mode"), ["off", "optional", "required"] as const);
  const file = get("clientAttestation.policy");
  const policyFile = file === null ? null : str("clientAttestation.policy", file, src("clientAttestation.policy"));
  if (mode !== "off" && policyFile === null)
    fail("clientAttestation.policy", src("clientAttestation.policy"), `required when clientAttestation.mode is ${mode}: the policy client certificates are judged by`);
  // A policy with the mode left at its default looks like client attestation but would be none.
  if (mode === "off" && policyFile !== null && !raw.has("clientAttestation.mode")) {
    fail("clientAttestation.mode", src("clientAttestation.policy"), "a client policy is set but the mode defaults to off: set optional or required (or off explicitly)");
  }
  return { mode, policyFile, policySource: src("clientAttestation.policy"), policy: null };
}

function workersOf(up: Upstream, provider: string, v: unknown, source: string): number {
  const n = int("workers", v, source, 1, 64);
  // node:cluster hands sockets to workers over IPC (SCM_RIGHTS), which Gramine does not
  // implement (gramineproject/gramine#468): inside an enclave, scale out by replicas instead.
  if (n > 1 && provider === "gramine")
    fail(
      "workers",
      source,
      "must be 1 with attestation.provider: gramine: workers receive connections by file-descriptor passing, which Gramine does not support; run more replicas (configs/k8s) instead",
    );
  // Connections are spread over workers, not sessions: a client's next connection may reach a
  // worker that has never seen its Mcp-Session-Id.
  if (n > 1 && up.kind === "stdio") fail("workers", source, "must be 1 with upstream.command: stdio MCP sessions live in one process and a client's connections may reach any worker");
  return n;
}

/** Build and validate the typed Config from raw layered values. */
export function buildConfig(raw: Raw, source: string): Config {
  const get = (k: Key): unknown => (raw.has(k) ? raw.get(k)!.value : DEFAULTS[k]);
  const src = (k: Key): string => raw.get(k)?.source ?? "default";
  // config-shares.ts reads keys it names itself; every one of them is in DEFAULTS.
  const [keyGet, keySrc] = [get as (k: string) => unknown, src as (k: string) => string];
  const attestation = attestationOf(keyGet, keySrc);
  const up = upstreamOf(raw, get, src);
  const allowPlaintextLoopback = bool("upstream.allowPlaintextLoopback", get("upstream.allowPlaintextLoopback"), src("upstream.allowPlaintextLoopback"));
  if (attestation.provider === "gramine" && up.kind === "http" && !allowPlaintextLoopback) {
    fail(
      "upstream.allowPlaintextLoopback",
      src("upstream.allowPlaintextLoopback"),
      "a TCP upstream leaves the enclave in clear (loopback crosses the host kernel); use upstream.command or a unix: socket, or set upstream.allowPlaintextLoopback: true to accept that",
    );
  }
  const hostHeader = get("upstream.host");
  const metricsListen = get("metrics.listen");
  return {
    source,
    listen: hostPort("listen", get("listen"), src("listen")),
    tls: { minVersion: oneOf("tls.minVersion", get("tls.minVersion"), src("tls.minVersion"), ["TLSv1.3", "TLSv1.2"] as const) },
    attestation,
    certificate: {
      keyType: oneOf("certificate.keyType", get("certificate.keyType"), src("certificate.keyType"), ["P-384", "P-256"] as const),
      lifetimeMs: duration("certificate.lifetime", get("certificate.lifetime"), src("certificate.lifetime")),
    },
    upstream: {
      ...up,
      hostHeader: hostHeader === null ? null : str("upstream.host", hostHeader, src("upstream.host")),
      allowPlaintextLoopback,
      ...sessionLimitsOf(keyGet, keySrc),
      sessionIdleMs: duration("upstream.sessionIdle", get("upstream.sessionIdle"), src("upstream.sessionIdle")),
      bodyLimit: size("upstream.bodyLimit", get("upstream.bodyLimit"), src("upstream.bodyLimit")),
      idleTimeoutMs: duration("upstream.idleTimeout", get("upstream.idleTimeout"), src("upstream.idleTimeout")),
      headersTimeoutMs: get("upstream.headersTimeout") === null ? null : duration("upstream.headersTimeout", get("upstream.headersTimeout"), src("upstream.headersTimeout")),
    },
    attestationEndpoint: attestationEndpointOf(keyGet, keySrc),
    metrics: { listen: metricsListen === null ? null : hostPort("metrics.listen", metricsListen, src("metrics.listen")) },
    log: { level: oneOf("log.level", get("log.level"), src("log.level"), ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const) },
    shutdown: { drainMs: duration("shutdown.drain", get("shutdown.drain"), src("shutdown.drain")) },
    workers: workersOf(up, attestation.provider, get("workers"), src("workers")),
    limits: {
      handshakeTimeoutMs: duration("limits.handshakeTimeout", get("limits.handshakeTimeout"), src("limits.handshakeTimeout")),
      headersTimeoutMs: duration("limits.headersTimeout", get("limits.headersTimeout"), src("limits.headersTimeout")),
      maxHeaderSize: headerSize(get("limits.maxHeaderSize"), src("limits.maxHeaderSize")),
      maxHeaders: int("limits.maxHeaders", get("limits.maxHeaders"), src("limits.maxHeaders"), 8, 1000),
      ...connectionLimitsOf(keyGet, keySrc),
    },
    clientAttestation: clientAttestationOf(raw, get, src),
    auth: authOf(keyGet, keySrc),
  };
}

/** A YAML scalar or flow value from an environment variable or a flag ("false", "[a, b]", "8443"). */
function scalar(text: string, key: string, source: string): unknown {
  try {
    return parseYaml(text);
  } catch (e) {
    fail(key, source, `not a valid value: ${(e as Error).message}`);
  }
}

export interface ConfigInputs {
  file?: string | null;
  env?: NodeJS.ProcessEnv;
  /** `--set key=value` pairs and shorthand flags already mapped to keys. */
  sets?: [string, string][];
}

export async function loadConfig(inputs: ConfigInputs): Promise<Config> {
  const raw: Raw = new Map();
  const file = inputs.file ?? null;
  if (file !== null) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      throw new ConfigError("--config", file, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const doc = parseDocument(text, { uniqueKeys: true });
    if (doc.errors.length > 0) throw new ConfigError("(yaml)", file, doc.errors[0]!.message);
    flatten(doc.toJS(), file, "", raw);
  }
  const env = inputs.env ?? {};
  for (const key of KEYS) {
    const name = envName(key);
    const v = env[name];
    if (v !== undefined) raw.set(key, { value: scalar(v, key, `environment ${name}`), source: `environment ${name}` });
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith("ATTESTABLE_MCP_") && !KEYS.some((k) => envName(k) === name)) {
      throw new ConfigError(name, "environment", "unknown variable (no such config key)");
    }
  }
  for (const [key, value] of inputs.sets ?? []) {
    if (!(KEYS as string[]).includes(key)) throw new ConfigError(key, `flag --set ${key}`, "unknown key");
    raw.set(key as Key, { value: scalar(value, key, `flag --set ${key}`), source: `flag --set ${key}` });
  }
  const config = buildConfig(raw, file ?? "(no file)");
  const ca = config.clientAttestation;
  if (ca.mode !== "off" && ca.policyFile !== null) {
    ca.policy = await loadClientPolicy(ca.policyFile, ca.policySource);
  }
  return config;
}

export const CONFIG_KEYS: readonly string[] = KEYS;

/**
 * Load and vet the client policy of mutual attestation. A relative path is taken from the working
 * directory, like every other path in the serve config. `source` says where the config key came from.
 */
export async function loadClientPolicy(file: string, source: string): Promise<Policy> {
  let policy: Policy;
  try {
    policy = await loadPolicy(resolve(file));
  } catch (e) {
    // loadPolicy names an unreadable file "--policy", the command-line flag of `verify`.
    if (e instanceof PolicyError) throw new ClientPolicyError(e.key === "--policy" ? null : e.key, source, `${e.reason} (in ${e.source})`, { cause: e });
    throw e;
  }
  // A server cannot ask its client for fresh evidence: only the certificate's quote exists here.
  // Accepting a policy that asks for more would silently weaken it, so it is refused.
  if (policy.freshness !== "certificate") {
    throw new ClientPolicyError(
      "freshness",
      source,
      `a client policy must say "freshness: certificate" (a server cannot ask its client for ${policy.freshness}-bound evidence), got ${policy.freshness}${policy.freshness === "exporter" ? " (the default when the key is absent)" : ""} (in ${policy.source})`,
    );
  }
  return policy;
}
