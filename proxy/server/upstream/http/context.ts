/**
 * What every exchange and tunnel of one forwarder shares; `closed` and `open` are the forwarder's
 * live state.
 */
import type { Logger } from "pino";
import type { ProxyHooks } from "../../hooks.js";
import type { HeaderRules } from "./headers.js";

export interface ForwarderContext {
  readonly rules: HeaderRules;
  readonly describe: string;
  readonly headersTimeoutMs: number | null;
  readonly idleTimeoutMs: number;
  readonly log: Logger;
  readonly hooks: ProxyHooks;
  readonly closed: boolean;
  /** What the forwarder's close() tears down. */
  readonly open: Set<{ teardown(): void }>;
}
