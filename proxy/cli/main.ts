#!/usr/bin/env node
/** The `attestable-mcp` command: argument parsing and exit codes; the work lives elsewhere. */
import { parseArgs } from "node:util";
import { AttestationError } from "../attest/provider.js";
import { AttestableMcpError } from "../core/errors.js";
// Each command loads its own modules (below, on dispatch): `serve` inside the enclave should
// not carry the client side's MCP SDK client and undici in memory, nor the other way round.

const USAGE = `Usage: attestable-mcp <command> [options]

Commands:
  inspect FILE [--collateral PATH] [--at TIME] [--trust-root PEM]... [--json]
      Decode a DCAP quote (binary, hex or base64) or an RA-TLS certificate (PEM or DER) and
      verify it offline: key binding (certificates), signatures, QE binding, PCK chain to the
      Intel SGX Root CA (pinned by key), and with --collateral (a PCS-layout directory or a
      dcap-qvl JSON file) CRLs, TCB status and QE identity.
      TIME is ISO 8601 or Unix seconds (default: now). --trust-root adds a root (the dev root).
      Exit 0 when the evidence verifies, 1 when it does not, 2 on usage or unreadable input.
  serve [--config FILE] [--listen HOST:PORT] [--log-level LEVEL] [--set KEY=VALUE]...
      The RA-TLS reverse proxy. Config from FILE (YAML), then ATTESTABLE_MCP_* environment
      variables, then flags (--set takes any config key, e.g. --set upstream.maxSessions=8).
      Exit 2 on an invalid config (the key and its source are named), 1 when it cannot start
      (attestation unavailable, address in use), 0 after SIGTERM.
  verify URL --policy FILE [--json] [--save-cert FILE]
      Connect to an attested proxy (https: only), appraise the RA-TLS certificate it serves
      against the policy (roots, measurements, debug, TCB status, collateral), and check
      freshness on the same connection as the policy says (exporter, nonce or certificate).
      Prints the verdict (--json: inspect's JSON plus binding, freshness, policy, collateral).
      --save-cert writes the verified certificate (PEM) to FILE, only when it is trusted, for
      clients that pin it (docs/pinning.md: a pin breaks at every certificate rotation).
      Exit 0 trusted, 1 rejected (the failed check is named), 2 usage error, invalid policy
      (the key is named), network error, or FILE not writable.
  new-key NAME --keys-file FILE
      A bearer key for auth.mode: bearer. Prints a random token (32 bytes, base64url) once on
      stdout and appends "NAME <sha256 hex of the token>" to FILE (created with mode 0600); the
      token itself is stored nowhere. NAME: 1 to 64 of A-Z a-z 0-9 . _ - and new in FILE.
      Exit 0 on success, 2 on usage, a NAME already there, or FILE unusable.
  bridge --remote URL --policy FILE (--stdio | --listen HOST:PORT) [--bearer-file FILE]
      A local MCP endpoint that forwards to a remote RA-TLS proxy once its evidence satisfies the
      policy. --stdio: an MCP stdio server for desktop clients (logs go to stderr); each message
      reaches the remote unchanged, in the MCP revision the client speaks. --listen:
      plain Streamable HTTP on a loopback address (port 0 picks one; the address is printed on
      stderr). Every new connection to the remote is verified, so a changed certificate is checked
      again. --bearer-file: a file holding one bearer token (never the token in argv), sent as
      Authorization: Bearer on every request to the remote and re-read when the file changes;
      in --listen mode it replaces the local client's own Authorization, which without it
      passes through. Exit 1 when the remote fails attestation (the failed check is named on
      stderr), 2 on usage, an unreadable --bearer-file, an invalid policy (the key is named) or
      a remote unreachable at start, 0 when stdin closes (--stdio) or after SIGINT / SIGTERM.

Options:
  -h, --help     this text
`;

function usage(message?: string): number {
  if (message) process.stderr.write(`attestable-mcp: ${message}\n\n`);
  process.stderr.write(USAGE);
  return 2;
}

async function runInspect(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      collateral: { type: "string" },
      at: { type: "string" },
      "trust-root": { type: "string", multiple: true },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usage("inspect takes exactly one FILE");
  const file = positionals[0]!;
  const args: Parameters<typeof inspect>[0] = { file, trustRoots: values["trust-root"] ?? [] };
  if (values.collateral !== undefined) args.collateral = values.collateral;
  if (values.at !== undefined) args.at = values.at;
  const { inspect, renderVerdict } = await import("./inspect.js");
  const verdict = await inspect(args);
  process.stdout.write(values.json ? JSON.stringify(verdict, null, 2) + "\n" : renderVerdict(verdict, file));
  return verdict.ok ? 0 : 1;
}

async function runServe(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      listen: { type: "string" },
      "log-level": { type: "string" },
      set: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 0) return usage(`serve takes no positional arguments (got ${positionals.join(" ")})`);
  const sets: [string, string][] = [];
  for (const s of values.set ?? []) {
    const i = s.indexOf("=");
    if (i <= 0) return usage(`--set expects KEY=VALUE, got "${s}"`);
    sets.push([s.slice(0, i), s.slice(i + 1)]);
  }
  if (values.listen !== undefined) sets.push(["listen", JSON.stringify(values.listen)]);
  if (values["log-level"] !== undefined) sets.push(["log.level", values["log-level"]]);
  const { serve } = await import("./serve.js");
  return serve({ file: values.config ?? null, env: process.env, sets });
}

async function runVerify(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      policy: { type: "string" },
      json: { type: "boolean" },
      "save-cert": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usage("verify takes exactly one URL");
  if (values.policy === undefined) return usage("verify needs --policy FILE: there is no default trust");
  const url = positionals[0]!;
  const { renderConnectionVerdict, saveCertificate, verify } = await import("./verify.js");
  let verified: Awaited<ReturnType<typeof verify>>;
  try {
    verified = await verify({ url, policy: values.policy });
  } catch (e) {
    // Not a verdict: the policy, the URL or the network. Usage-class, not "rejected".
    const err = e as NodeJS.ErrnoException;
    const msg = e instanceof AttestableMcpError ? `${e.code}: ${e.message}` : `cannot reach ${url}: ${err.code ? `${err.code} ` : ""}${err.message}`;
    process.stderr.write(`attestable-mcp: ${msg}\n`);
    return 2;
  }
  const { verdict } = verified;
  process.stdout.write(values.json ? JSON.stringify(verdict, null, 2) + "\n" : renderConnectionVerdict(verdict, url));
  const saveTo = values["save-cert"];
  if (saveTo !== undefined) {
    try {
      if (await saveCertificate(saveTo, verified)) process.stderr.write(`attestable-mcp: saved the verified certificate (sha256 ${verdict.fingerprint}) to ${saveTo}\n`);
    } catch (e) {
      process.stderr.write(`attestable-mcp: --save-cert ${saveTo}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return 2;
    }
  }
  return verdict.ok ? 0 : 1;
}

async function runBridge(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      remote: { type: "string" },
      policy: { type: "string" },
      stdio: { type: "boolean" },
      listen: { type: "string" },
      "bearer-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 0) return usage(`bridge takes no positional arguments (got ${positionals.join(" ")})`);
  if (values.remote === undefined) return usage("bridge needs --remote URL");
  if (values.policy === undefined) return usage("bridge needs --policy FILE");
  if ((values.stdio === true) === (values.listen !== undefined)) return usage("bridge needs exactly one of --stdio and --listen HOST:PORT");
  const { bridge } = await import("./bridge.js");
  return bridge({ remote: values.remote, policy: values.policy, listen: values.listen ?? null, bearerFile: values["bearer-file"] ?? null });
}

async function runNewKey(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { "keys-file": { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usage("new-key takes exactly one NAME");
  if (values["keys-file"] === undefined) return usage("new-key needs --keys-file FILE");
  const { newKey } = await import("./new-key.js");
  // Errors (a taken NAME, an unusable FILE) are ConfigErrors: main's handler prints them, exit 2.
  process.stdout.write(`${newKey(positionals[0]!, values["keys-file"])}\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  switch (command) {
    case "inspect":
      return runInspect(rest);
    case "serve":
      return runServe(rest);
    case "verify":
      return runVerify(rest);
    case "bridge":
      return runBridge(rest);
    case "new-key":
      return runNewKey(rest);
    default:
      return usage(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof AttestableMcpError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`attestable-mcp: ${msg}\n`);
    // Could not start (no attestation, port taken): 1. Usage, config and input errors: 2.
    process.exitCode = e instanceof AttestationError || typeof (e as NodeJS.ErrnoException)?.syscall === "string" ? 1 : 2;
  },
);
