/** `bridge`: a local MCP endpoint in front of a verified remote; the relays live in client/bridge/. */
import { startHttpBridge } from "../client/bridge/listen.js";
import { parseListen, parseRemote, runStdioBridge } from "../client/bridge/stdio.js";
import { readFile } from "node:fs/promises";
import { BridgeError } from "../core/errors.js";
import { loadPolicy } from "../evidence/policy.js";

/** Runs the bridge (stdio when `listen` is null) until it ends; the exit code. */
export async function bridge(args: { remote: string; policy: string; listen: string | null; bearerFile?: string | null }): Promise<number> {
  const remote = parseRemote(args.remote);
  const listen = args.listen === null ? null : parseListen(args.listen);
  const policy = await loadPolicy(args.policy);
  const bearer = args.bearerFile ? await bearerToken(args.bearerFile) : undefined;
  const log = (line: string): void => void process.stderr.write(`attestable-mcp bridge: ${line}\n`);
  const code = listen ? await (await startHttpBridge({ remote, policy, log, listen, signals: true, bearer })).done : await runStdioBridge({ remote, policy, log, signals: true, bearer });
  // Whatever the ending left open (a keep-alive socket, stdin) must not keep the bridge alive.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

/** The token of --bearer-file, trimmed (a file, so that it is never in argv or a process list). */
async function bearerToken(file: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, "utf8")).trim();
  } catch (e) {
    throw new BridgeError("BEARER_FILE_INVALID", `--bearer-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) throw new BridgeError("BEARER_FILE_INVALID", `--bearer-file ${file}: expected one token (printable, no spaces)`);
  return token;
}
