/**
 * The config's attestation provider (DESIGN.md §4, §11): which provider quotes, where its device
 * lives, and what the dev provider imitates. There is no default provider and nothing falls back
 * from one to another: a config names the one it means.
 */
import { ConfigError } from "../core/errors.js";
import { valueParsers } from "../core/schema.js";

type Get = (k: string) => unknown;
type Src = (k: string) => string;

export interface AttestationConfig {
  provider: "dev" | "gramine" | "tdx";
  devDir: string;
  gramineDir: string;
  /** configfs-tsm report directory of the tdx provider. */
  tdxDir: string;
  /** What the dev provider quotes as: an SGX enclave or a TDX trust domain. */
  devTee: "sgx" | "tdx";
  /** The dev provider's least time per quote, made one at a time as real hardware does (0: none). */
  devQuoteLatencyMs: number;
}

const { duration, str, oneOf } = valueParsers((key, source, reason) => {
  throw new ConfigError(key, source, reason);
});

/** 0 (or "0", "0ms", "0s") means none; any other value is a duration. */
function latency(v: unknown, source: string): number {
  if (v === 0 || v === "0" || v === "0ms" || v === "0s") return 0;
  return duration("attestation.dev.quoteLatency", v, source, 60_000);
}

export function attestationOf(get: Get, src: Src): AttestationConfig {
  const provider = get("attestation.provider");
  if (provider === undefined) throw new ConfigError("attestation.provider", src("attestation.provider"), "required: dev, gramine or tdx (there is no default)");
  const a: AttestationConfig = {
    provider: oneOf("attestation.provider", provider, src("attestation.provider"), ["dev", "gramine", "tdx"] as const),
    devDir: str("attestation.dev.dir", get("attestation.dev.dir"), src("attestation.dev.dir")),
    gramineDir: str("attestation.gramine.dir", get("attestation.gramine.dir"), src("attestation.gramine.dir")),
    tdxDir: str("attestation.tdx.dir", get("attestation.tdx.dir"), src("attestation.tdx.dir")),
    devTee: oneOf("attestation.dev.tee", get("attestation.dev.tee"), src("attestation.dev.tee"), ["sgx", "tdx"] as const),
    devQuoteLatencyMs: latency(get("attestation.dev.quoteLatency"), src("attestation.dev.quoteLatency")),
  };
  // A dev-only knob set under a real provider would suggest it does something there.
  if (a.provider !== "dev") {
    for (const k of ["attestation.dev.tee", "attestation.dev.quoteLatency"]) {
      if (src(k) !== "default") throw new ConfigError(k, src(k), `only applies to attestation.provider: dev (the provider is ${a.provider})`);
    }
  }
  return a;
}
