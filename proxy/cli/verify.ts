/**
 * `verify`: connect to a remote proxy, appraise its certificate against a policy, check freshness
 * on the same connection, render the verdict, and save the certificate for clients that pin it.
 * No default trust: the policy is required.
 */
import { writeFile } from "node:fs/promises";
import { derToPem } from "../attest/build/x509.js";
import { verifyRemoteCertificate, type ConnectionVerdict } from "../client/connector.js";
import { loadPolicy } from "../evidence/policy.js";
import { renderVerdict } from "./inspect.js";

export interface VerifyArgs {
  url: string;
  policy: string;
  connectTimeoutMs?: number;
}

export interface Verified {
  verdict: ConnectionVerdict;
  /** The DER certificate the verdict judged, from the same connection. */
  certificate: Uint8Array;
}

export async function verify(args: VerifyArgs): Promise<Verified> {
  const policy = await loadPolicy(args.policy);
  return verifyRemoteCertificate(args.url, { policy, ...(args.connectTimeoutMs ? { connectTimeoutMs: args.connectTimeoutMs } : {}) });
}

/**
 * `--save-cert`: the certificate as PEM, written only when the verdict is trusted, because a
 * client that pins it trusts it without an appraisal of its own. Returns whether it wrote.
 */
export async function saveCertificate(file: string, v: Verified): Promise<boolean> {
  if (!v.verdict.ok) return false;
  await writeFile(file, derToPem(v.certificate));
  return true;
}

/** inspect's report of the certificate, preceded by what only a live connection adds. */
export function renderConnectionVerdict(v: ConnectionVerdict, url: string): string {
  const out: string[] = [];
  const row = (k: string, val: string): void => void out.push(`  ${k.padEnd(16)} ${val}`);
  out.push(`Connection ${url}`);
  row("fingerprint", `sha256 ${v.fingerprint}${v.cached ? " (appraisal cached)" : ""}`);
  row("policy", v.policy);
  const c = v.collateral;
  row(
    "collateral",
    c === null ? "none (tcb.require: false, or unavailable: see the checks)" : `${c.source}, ${c.location}${c.fetchedAt ? `, fetched ${c.fetchedAt}` : ""}${c.error ? ` (${c.error})` : ""}`,
  );
  row("binding", v.binding === null ? "not evaluated" : v.binding.ok ? `ok: the quote binds this certificate's key (SPKI sha256 ${v.binding.spkiSha256})` : "FAILED (see binding.* checks)");
  row("freshness", `${v.freshness.mode}: ${v.freshness.ok ? "" : "NOT ESTABLISHED: "}${v.freshness.detail}`);
  if (v.freshness.nonce) row("nonce", v.freshness.nonce);
  if (v.freshness.exporter) row("tls-exporter", v.freshness.exporter);
  return out.join("\n") + "\n" + renderVerdict(v, url, "TRUSTED: the evidence verifies and satisfies the policy");
}
