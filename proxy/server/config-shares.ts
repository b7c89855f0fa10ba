/**
 * The config's shares and caps (DESIGN.md §9): fresh evidence, connections and stdio sessions,
 * each a global cap and one client's share of it. A share left null is half the cap; a share
 * above the cap could never be used whole and is refused (evidence: clamped, as before).
 */
import { ConfigError } from "../core/errors.js";
import { valueParsers } from "../core/schema.js";

type Get = (k: string) => unknown;
type Src = (k: string) => string;

const { int, duration } = valueParsers((key, source, reason) => {
  throw new ConfigError(key, source, reason);
});

/** A cap and a share (null: half the cap) read from two keys. */
function capAndShare(get: Get, src: Src, capKey: string, shareKey: string, capMax: number): [number, number] {
  const max = int(capKey, get(capKey), src(capKey), 1, capMax);
  const per = get(shareKey);
  if (per === null) return [max, Math.max(1, Math.ceil(max / 2))];
  const n = int(shareKey, per, src(shareKey), 1, capMax);
  if (n > max) throw new ConfigError(shareKey, src(shareKey), `${n} is above ${capKey} (${max}): a share is part of the cap`);
  return [max, n];
}

export function attestationEndpointOf(get: Get, src: Src): { quotesPerMinute: number; quotesPerClientPerMinute: number } {
  const cap = int("attestationEndpoint.quotesPerMinute", get("attestationEndpoint.quotesPerMinute"), src("attestationEndpoint.quotesPerMinute"), 1, 100_000);
  const share = int("attestationEndpoint.quotesPerClientPerMinute", get("attestationEndpoint.quotesPerClientPerMinute"), src("attestationEndpoint.quotesPerClientPerMinute"), 1, 100_000);
  // A share above the cap could never be spent: the cap is what it is then.
  return { quotesPerMinute: cap, quotesPerClientPerMinute: Math.min(cap, share) };
}

export function connectionLimitsOf(get: Get, src: Src): { maxConnections: number; maxConnectionsPerClient: number } {
  const [maxConnections, maxConnectionsPerClient] = capAndShare(get, src, "limits.maxConnections", "limits.maxConnectionsPerClient", 1_000_000);
  return { maxConnections, maxConnectionsPerClient };
}

export function sessionLimitsOf(get: Get, src: Src): { maxSessions: number; maxSessionsPerClient: number; initTimeoutMs: number } {
  const [maxSessions, maxSessionsPerClient] = capAndShare(get, src, "upstream.maxSessions", "upstream.maxSessionsPerClient", 10_000);
  return { maxSessions, maxSessionsPerClient, initTimeoutMs: duration("upstream.initTimeout", get("upstream.initTimeout"), src("upstream.initTimeout")) };
}
