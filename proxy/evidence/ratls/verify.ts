/**
 * verifyRaTlsCertificate: the verdict for an RA-TLS certificate. It adds certificate and key
 * binding checks in front of the evidence core's checks on the certificate's quote(s). When a
 * certificate carries more than one quote, the primary (TCG tagged evidence, else Gramine's
 * legacy quote) gives the evidence fields and every other quote must verify too.
 */
import { toHex } from "../../core/bytes.js";
import type { Failed, Result } from "../../core/result.js";
import { checkBinding, claimsForDisplay, readRaTlsCertificate, type ParsedRaTls, type RaTlsEvidence } from "./read.js";
import { verifySignedBy } from "../dcap/signatures.js";
import type { Quote } from "../dcap/quote.js";
import type { PckPath } from "../dcap/quote-checks.js";
import { CheckList, type CheckName, type Verdict } from "../verdict.js";
import { judgeQuote, judging, type Judging, type VerifyOptions } from "../dcap/verify.js";
import type { Certificate } from "../asn1/x509.js";

export interface RaTlsVerdict extends Verdict {
  binding: { ok: boolean; claims: Record<string, unknown>; spkiSha256: string } | null;
  certificate: null | { subject: string; notBefore: string; notAfter: string; key: string; extensions: RaTlsEvidence["extensions"] };
}

function keyName(c: Certificate): string {
  return c.publicKey.algorithm === "EC" ? `EC ${c.publicKey.curve}` : c.publicKey.algorithm;
}

/** The verdict on a certificate that cannot be read: `cert.format` fails and nothing else runs. */
export function unreadableCertificate(why: Failed, at: Date): RaTlsVerdict {
  const c = new CheckList();
  c.fail("cert.format", `${why.code ?? "ERROR"}: ${why.reason}`);
  const { ok, failed } = c.outcome();
  return { ok, failed, checks: c.checks, quote: null, platform: null, tcb: null, dev: false, at: at.toISOString(), binding: null, certificate: null };
}

/** The primary quote: the TCG tagged evidence's, else Gramine's legacy one (readRaTls requires one of them). */
export function primaryQuote(p: ParsedRaTls): { bytes: Uint8Array; parsed: Result<Quote> } {
  const { evidence: ev, quotes } = p;
  return ev.tagged ? { bytes: ev.tagged.quote, parsed: quotes.tagged! } : { bytes: ev.legacy!.quote, parsed: quotes.legacy! };
}

export async function verifyRaTlsCertificate(der: Uint8Array, opts: VerifyOptions = {}): Promise<RaTlsVerdict> {
  const parsed = readRaTlsCertificate(der);
  if (!parsed.ok) return unreadableCertificate(parsed, opts.at ?? new Date());
  return judgeRaTls(parsed.value, judging(opts));
}

/**
 * verifyRaTlsCertificate over a certificate parsed once. `primaryPck`, when given, is the primary
 * quote's pckPath at `j.at` under `j.anchors`.
 */
export async function judgeRaTls(p: ParsedRaTls, j: Judging, primaryPck?: PckPath): Promise<RaTlsVerdict> {
  const { cert, evidence: ev, quotes } = p;
  const at = j.at;
  const c = new CheckList();
  c.pass(
    "cert.format",
    `${keyName(cert)} certificate with ${ev.extensions
      .filter((x) => x.kind !== "x509" && x.kind !== "unknown")
      .map((x) => x.kind)
      .join(", ")}`,
  );
  c.record("cert.signature", verifySignedBy(cert, cert), `self-signature under the certificate's own key (${keyName(cert)})`);
  const inWindow = at >= cert.notBefore && at <= cert.notAfter;
  c.record("cert.validity", inWindow, `valid ${cert.notBefore.toISOString()} – ${cert.notAfter.toISOString()}${inWindow ? "" : `, not at ${at.toISOString()}`}`);

  const binding = checkBinding(ev, quotes);
  for (const b of binding) c.record(b.check, b.ok, b.detail);

  const main = await judgeQuote(primaryQuote(p).parsed, j, primaryPck);
  for (const k of main.checks) c.record(k.check, k.ok, k.detail);

  const others: [CheckName, Result<Quote>][] = [];
  if (quotes.tagged && quotes.legacy) others.push(["quote.legacy", quotes.legacy]);
  if (quotes.sdk) others.push(["quote.sdk", quotes.sdk]);
  for (const [name, quote] of others) {
    const v = await judgeQuote(quote, j);
    c.record(name, v.ok, v.ok ? "the second quote verifies as well" : `the second quote fails ${v.failed?.check}: ${v.failed?.reason}`);
  }

  const { ok, failed } = c.outcome();
  return {
    ok,
    failed,
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
