/**
 * Trust anchors. Intel's SGX Root CA is built in (the production root, valid to 2049); anchors are
 * matched by public key, so older certificates for the same key (valid to 2033, embedded in older
 * quotes) chain to it too. Other roots (the dev root) are used only when the caller passes them.
 */
import { equalBytes } from "../../core/bytes.js";
import { InputError, type EvidenceError } from "../../core/errors.js";
import { pemBlocks } from "../asn1/pem.js";
import { parseCertificate, type Certificate } from "../asn1/x509.js";

/** Intel SGX Root CA, DER SHA-256 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3. */
export const INTEL_SGX_ROOT_CA_PEM = `
-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----`;

export interface TrustAnchor {
  cert: Certificate;
  /** The built-in Intel root (false: a root the caller passed, such as the dev root). */
  intel: boolean;
}

let intelAnchor: TrustAnchor | undefined;

export function intelRoot(): TrustAnchor {
  if (intelAnchor === undefined) {
    const der = pemBlocks(INTEL_SGX_ROOT_CA_PEM)[0]!;
    intelAnchor = { cert: parseCertificate(der), intel: true };
  }
  return intelAnchor;
}

/** A root as a caller gives it: PEM text (possibly several blocks), DER bytes, or an anchor parsed before. */
export type TrustRoot = string | Uint8Array | TrustAnchor;

function isAnchor(root: TrustRoot): root is TrustAnchor {
  return typeof root === "object" && !(root instanceof Uint8Array);
}

/**
 * Intel's root plus every root given. Text and bytes are parsed here, and a root that is not a
 * self-signed CA certificate is refused, as is one that does not parse; anchors (a policy's,
 * parsed when it loaded) are taken as they are.
 */
export function trustAnchors(extra: readonly TrustRoot[] = []): TrustAnchor[] {
  const anchors = [intelRoot()];
  for (const [i, root] of extra.entries()) {
    if (isAnchor(root)) {
      if (!anchors.some((a) => equalBytes(a.cert.spki, root.cert.spki))) anchors.push(root);
      continue;
    }
    let ders: Uint8Array[];
    try {
      ders = typeof root === "string" ? pemBlocks(root) : [root];
    } catch (e) {
      throw new InputError("TRUST_ROOT_INVALID", `trust root #${i + 1}: ${(e as Error).message}`);
    }
    if (ders.length === 0) throw new InputError("TRUST_ROOT_INVALID", `trust root #${i + 1}: no certificate found`);
    for (const der of ders) {
      let cert: Certificate;
      try {
        cert = parseCertificate(der);
      } catch (e) {
        throw new InputError("TRUST_ROOT_INVALID", `trust root #${i + 1}: ${(e as EvidenceError).message}`);
      }
      if (!cert.basicConstraints?.ca) {
        throw new InputError("TRUST_ROOT_INVALID", `trust root #${i + 1} (${cert.subjectText}) is not a CA certificate`);
      }
      if (!anchors.some((a) => equalBytes(a.cert.spki, cert.spki))) anchors.push({ cert, intel: isIntelKey(cert) });
    }
  }
  return anchors;
}

export function isIntelKey(cert: Certificate): boolean {
  return equalBytes(cert.spki, intelRoot().cert.spki);
}
