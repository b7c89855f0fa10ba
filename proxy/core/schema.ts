/**
 * Value parsers shared by the serve config and the client policy (durations, sizes, integers,
 * HOST:PORT, URLs), and the one rule for what counts as a loopback host.
 *
 * Each file names its own failures (a config key is a ConfigError, a policy key a PolicyError),
 * so the parsers are made for a `refuse` function: `valueParsers((key, source, reason) => ...)`.
 * Every refusal names the key, where the value came from, and why.
 */
import { isIP } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";

/** Refuses the value at `key` (from `source`, a file, variable or flag); never returns. */
export type Refuse = (key: string, source: string, reason: string) => never;

/** The longest a Node timer can wait (about 24.8 days): the default bound of a duration. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZES: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** "~" and "~/…" are the user's home directory; other paths are unchanged. */
export function expandHome(p: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return join(homedir(), p.slice(2));
  return p;
}

/** "[::1]" → "::1"; other hosts unchanged. */
export function unbracket(host: string): string {
  return host.replace(/^\[(.*)\]$/, "$1");
}

/**
 * Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's loopback:
 * `localhost`, 127.0.0.0/8, ::1 in any spelling, or ::ffff:127.x.y.z. A name is never an address:
 * "127.attacker.example" is a DNS name like any other.
 */
export function isLoopback(host: string): boolean {
  const h = unbracket(host).toLowerCase();
  if (h === "localhost") return true;
  const family = isIP(h);
  if (family === 4) return h.startsWith("127.");
  if (family !== 6 || h.includes("%")) return false;
  // The URL parser writes an IPv6 address in its one canonical form (RFC 5952, mapped IPv4 in hex).
  const canonical = unbracket(new URL(`http://[${h}]/`).hostname);
  return canonical === "::1" || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

export interface ValueParsers {
  /** "500ms", "30s", "5m", "24h", "7d"; at most `max` ms (default MAX_TIMER_MS). */
  duration(key: string, v: unknown, source: string, max?: number): number;
  /** A positive integer of bytes, or "16KiB", "4MiB", "1GiB". */
  size(key: string, v: unknown, source: string): number;
  int(key: string, v: unknown, source: string, min: number, max: number): number;
  /** A non-empty string. */
  str(key: string, v: unknown, source: string): string;
  oneOf<T extends string>(key: string, v: unknown, source: string, options: readonly T[]): T;
  bool(key: string, v: unknown, source: string): boolean;
  /** HOST:PORT, IPv6 in brackets; the host is returned without them. */
  hostPort(key: string, v: unknown, source: string): { host: string; port: number };
  /** A string that parses as a URL; `hint` follows the refusal, e.g. the expected shape. */
  url(key: string, v: unknown, source: string, hint?: string): URL;
  /** A service URL: https:, or http: to a loopback host only. */
  serviceUrl(key: string, v: unknown, source: string): URL;
}

export function valueParsers(refuse: Refuse): ValueParsers {
  const str = (key: string, v: unknown, source: string): string => {
    if (typeof v !== "string" || v.length === 0) refuse(key, source, `expected a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  };
  const url = (key: string, v: unknown, source: string, hint?: string): URL => {
    const s = str(key, v, source);
    try {
      return new URL(s);
    } catch {
      return refuse(key, source, `"${s}" is not a URL${hint ? ` (${hint})` : ""}`);
    }
  };
  return {
    duration(key, v, source, max = MAX_TIMER_MS) {
      const m = typeof v === "string" ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v.trim()) : null;
      if (!m) refuse(key, source, `expected a duration such as "500ms", "30s", "5m", "24h", got ${JSON.stringify(v)}`);
      const ms = Number(m[1]) * UNITS[m[2]!]!;
      if (!(ms > 0) || !Number.isFinite(ms) || ms > max) refuse(key, source, `duration ${JSON.stringify(v)} is out of range`);
      return ms;
    },
    size(key, v, source) {
      if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
      const m = typeof v === "string" ? /^(\d+)\s*(B|KiB|MiB|GiB)$/.exec(v.trim()) : null;
      if (!m) refuse(key, source, `expected a size such as 4194304 or "4MiB", got ${JSON.stringify(v)}`);
      const n = Number(m[1]) * SIZES[m[2]!]!;
      if (!(n > 0)) refuse(key, source, "size must be positive");
      return n;
    },
    int(key, v, source, min, max) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) refuse(key, source, `expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
      return v;
    },
    str,
    oneOf<T extends string>(key: string, v: unknown, source: string, options: readonly T[]): T {
      if (typeof v !== "string" || !(options as readonly string[]).includes(v)) refuse(key, source, `expected one of ${options.join(", ")}, got ${JSON.stringify(v)}`);
      return v as T;
    },
    bool(key, v, source) {
      if (typeof v !== "boolean") refuse(key, source, `expected true or false, got ${JSON.stringify(v)}`);
      return v;
    },
    hostPort(key, v, source) {
      const s = str(key, v, source);
      const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(s);
      if (!m) refuse(key, source, `expected HOST:PORT (IPv6 in brackets), got "${s}"`);
      const port = Number(m[2]);
      if (port > 65535) refuse(key, source, `port ${port} is out of range`);
      return { host: unbracket(m[1]!), port };
    },
    url,
    serviceUrl(key, v, source) {
      const u = url(key, v, source);
      if (u.protocol !== "https:" && !(u.protocol === "http:" && isLoopback(u.hostname))) refuse(key, source, `must be https: (http: only on loopback), got ${u.protocol}`);
      return u;
    },
  };
}
