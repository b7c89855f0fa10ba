/**
 * Start-up without a grown young generation. V8 doubles its new space each time the bytes that
 * survived scavenges since the last doubling exceed its size, and start-up (compiling every module,
 * minting the key, the first quote) is all survivors: an idle proxy would keep a new space grown
 * for a load it has not seen (about 3 MB resident here) until V8's memory reducer shrinks it, some
 * 10 to 20 s later. So `serve` holds the growth factor at 1 until it listens, then gives back
 * V8's default of 2, and under load the new space grows as it always does. Nothing is held when
 * the operator set the factor (NODE_OPTIONS or a node flag): that choice stands.
 *
 * Measured under wrk (docs/performance.md): no difference in CPU per request, as the hold ends
 * before the first request.
 */
import { setFlagsFromString } from "node:v8";

const FLAG = "--semi-space-growth-factor";
/** V8's default for the flag. */
const DEFAULT_GROWTH = 2;

/** Whether the operator chose the growth factor on the command line or in NODE_OPTIONS. */
export function growthFactorSet(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  // V8 reads `_` and `-` alike in flag names.
  const named = (arg: string): boolean => {
    const name = arg.replaceAll("_", "-").split("=")[0];
    return name === FLAG;
  };
  return execArgv.some(named) || (nodeOptions ?? "").split(/\s+/).some(named);
}

/** Holds the new space at its initial size; the returned function (idempotent) lets it grow again. */
export function holdYoungGeneration(execArgv: readonly string[] = process.execArgv, nodeOptions: string | undefined = process.env.NODE_OPTIONS): () => void {
  if (growthFactorSet(execArgv, nodeOptions)) return () => {};
  setFlagsFromString(`${FLAG}=1`);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    setFlagsFromString(`${FLAG}=${DEFAULT_GROWTH}`);
  };
}
