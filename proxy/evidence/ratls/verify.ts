/**
 * verifyRaTlsCertificate: the verdict for an RA-TLS certificate. It adds certificate and key
 * binding checks in front of the evidence core's checks on the certificate's quote(s). When a
 * certificate carries more than one quote, the primary (TCG tagged evidence, else Gramine's
 * legacy quote) gives the evidence fields and every other quote must verify too.
 */
import { toHex } from "../../core/bytes.js";
import type { EvidenceError } from "../../core/errors.js";
import { checkBinding, claimsForDisplay, readRaTls, type RaTlsEvidence } from "./read.js";
import { verifySignedBy } from "../dcap/signatures.js";
import { CheckList, type CheckName, type Verdict } from "../verdict.js";
import { verifyQuote, type VerifyOptions } from "../dcap/verify.js";
import { parseCertificate, type Certificate } from "../asn1/x509.js";

export interface RaTlsVerdict extends Verdict {
  binding: { ok: boolean; claims: Record<string, unknown>; spkiSha256: string } | null;
  certificate: null | { subject: string; notBefore: string; notAfter: string; key: string; extensions: RaTlsEvidence["extensions"] };
}

function keyName(c: Certificate): string {
  return c.publicKey.algorithm === "EC" ? `EC ${c.publicKey.curve}` : c.publicKey.algorithm;
}

function empty(c: CheckList, at: Date): RaTlsVerdict {
  return { ok: false, failed: c.failed, checks: c.checks, quote: null, platform: null, tcb: null, dev: false, at: at.toISOString(), binding: null, certificate: null };
}

export async function verifyRaTlsCertificate(der: Uint8Array, opts: VerifyOptions = {}): Promise<RaTlsVerdict> {
  const at = opts.at ?? new Date();
  const c = new CheckList();
  let cert: Certificate;
  let ev: RaTlsEvidence;
  try {
    cert = parseCertificate(der);
    ev = readRaTls(cert);
  } catch (e) {
    c.fail("cert.format", `${(e as EvidenceError).code ?? "ERROR"}: ${(e as Error).message}`);
    return empty(c, at);
  }
  c.pass("cert.format", `${keyName(cert)} certificate with ${ev.extensions.filter((x) => x.kind !== "x509" && x.kind !== "unknown").map((x) => x.kind).join(", ")}`);
  c.record("cert.signature", verifySignedBy(cert, cert), `self-signature under the certificate's own key (${keyName(cert)})`);
  const inWindow = at >= cert.notBefore && at <= cert.notAfter;
  c.record("cert.validity", inWindow, `valid ${cert.notBefore.toISOString()} – ${cert.notAfter.toISOString()}${inWindow ? "" : `, not at ${at.toISOString()}`}`);

  const binding = checkBinding(ev);
  for (const b of binding) c.record(b.check, b.ok, b.detail);

  const primary = ev.tagged?.quote ?? ev.legacy!.quote;
  const main = await verifyQuote(primary, { ...opts, at });
  for (const k of main.checks) c.record(k.check, k.ok, k.detail);

  const others: [CheckName, Uint8Array][] = [];
  if (ev.tagged && ev.legacy) others.push(["quote.legacy", ev.legacy.quote]);
  if (ev.sdk) others.push(["quote.sdk", ev.sdk.quote]);
  for (const [name, bytes] of others) {
    const v = await verifyQuote(bytes, { ...opts, at });
    c.record(name, v.ok, v.ok ? "the second quote verifies as well" : `the second quote fails ${v.failed?.check}: ${v.failed?.reason}`);
  }

  return {
    ok: c.failed === null,
    failed: c.failed,
    checks: c.checks,
    quote: main.quote,
    platform: main.platform,
    tcb: main.tcb,
    dev: main.dev,
    at: at.toISOString(),
    binding: {
      ok: binding.every((b) => b.ok),
      claims: ev.tagged ? claimsForDisplay(ev.tagged.claims) : {},
      spkiSha256: toHex(ev.spkiSha256),
    },
    certificate: {
      subject: cert.subjectText,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
      key: keyName(cert),
      extensions: ev.extensions,
    },
  };
}
