/** `bridge`: a local MCP endpoint in front of a verified remote; the relays live in client/bridge/. */
import { startHttpBridge } from "../client/bridge/listen.js";
import { parseListen, parseRemote, runStdioBridge } from "../client/bridge/stdio.js";
import { bearerFile } from "../client/bridge/bearer-file.js";
import { loadPolicy } from "../evidence/policy.js";

/** Runs the bridge (stdio when `listen` is null) until it ends; the exit code. */
export async function bridge(args: { remote: string; policy: string; listen: string | null; bearerFile?: string | null }): Promise<number> {
  const remote = parseRemote(args.remote);
  const listen = args.listen === null ? null : parseListen(args.listen);
  const policy = await loadPolicy(args.policy);
  const log = (line: string): void => void process.stderr.write(`attestable-mcp bridge: ${line}\n`);
  const bearer = args.bearerFile ? bearerFile(args.bearerFile, log) : undefined;
  const code = listen ? await (await startHttpBridge({ remote, policy, log, listen, signals: true, bearer })).done : await runStdioBridge({ remote, policy, log, signals: true, bearer });
  // Whatever the ending left open (a keep-alive socket, stdin) must not keep the bridge alive.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}
