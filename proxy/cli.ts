#!/usr/bin/env node
/** The `attestable-mcp` command: argument parsing and exit codes; the work lives elsewhere. */
import { parseArgs } from "node:util";
import { AttestationError } from "./attest/provider.js";
import { EvidenceError } from "./evidence/errors.js";
import { inspect, renderVerdict } from "./inspect.js";
import { serve } from "./serve.js";

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
  verify URL [--policy FILE]      check a remote proxy's evidence (not built yet)
  bridge --remote URL --policy FILE (--stdio | --listen HOST:PORT)   (not built yet)

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
  return serve({ file: values.config ?? null, env: process.env, sets });
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
    case "bridge":
      return usage(`${command} is not built yet`);
    default:
      return usage(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof EvidenceError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`attestable-mcp: ${msg}\n`);
    // Could not start (no attestation, port taken): 1. Usage, config and input errors: 2.
    process.exitCode = e instanceof AttestationError || typeof (e as NodeJS.ErrnoException)?.syscall === "string" ? 1 : 2;
  },
);
