/**
 * Certificate path building and validation up to a trust anchor pinned by public key.
 *
 * Inputs arrive in any order (Fortanix quotes list leaf, root, intermediate) and may embed an
 * older certificate of the root (same key, shorter validity): we order by issuer name, check
 * every signature, CA flag and validity window at the verification time, and accept the path
 * only when its top is signed by, or is, an anchor's key. The anchor's own certificate (ours,
 * not the one in the input) supplies the root's validity.
 */
import { equalBytes } from "../../core/bytes.js";
import type { Result } from "../../core/result.js";
import type { TrustAnchor } from "./roots.js";
import { verifySignedBy } from "./signatures.js";
import { OID, type Certificate } from "../asn1/x509.js";

const MAX_PATH = 6;

export interface ValidPath {
  /** Leaf first, up to the last certificate below the anchor. */
  path: Certificate[];
  anchor: TrustAnchor;
}

function isSelfIssued(c: Certificate): boolean {
  return equalBytes(c.issuer, c.subject);
}

/** Critical extensions this verifier understands; any other critical one makes a certificate unusable (RFC 5280 §4.2). */
const KNOWN_CRITICAL = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.subjectKeyId, OID.authorityKeyId]);

function unknownCritical(c: Certificate): string | null {
  const ext = c.extensions.find((e) => e.critical && !KNOWN_CRITICAL.has(e.oid));
  return ext ? `${c.subjectText} has an unknown critical extension ${ext.oid}` : null;
}

function within(c: Certificate, at: Date): string | null {
  if (at < c.notBefore) return `${c.subjectText} is not valid before ${c.notBefore.toISOString()}`;
  if (at > c.notAfter) return `${c.subjectText} expired at ${c.notAfter.toISOString()}`;
  return null;
}

/**
 * Every certificate presented must be on the path or be a certificate of the anchor's own key
 * with a valid self-signature (an older root certificate). A certificate that is neither (a
 * tampered root, an unrelated extra) makes the evidence malformed, even though the path holds.
 */
function unaccounted(pool: readonly Certificate[], path: readonly Certificate[], anchor: TrustAnchor): string | null {
  for (const c of pool) {
    if (path.includes(c)) continue;
    if (isSelfIssued(c) && equalBytes(c.spki, anchor.cert.spki) && verifySignedBy(c, anchor.cert)) continue;
    return `${c.subjectText} in the chain is neither on the path to the trusted root nor a valid certificate of that root`;
  }
  return null;
}

/** The one certificate that issues no other certificate in the set (self-issued roots excluded). */
export function findLeaf(certs: readonly Certificate[]): Result<Certificate> {
  const leaves = certs.filter((c) => !isSelfIssued(c) && !certs.some((o) => o !== c && equalBytes(o.issuer, c.subject) && !isSelfIssued(o)));
  if (leaves.length === 1) return { ok: true, value: leaves[0]! };
  return { ok: false, reason: leaves.length === 0 ? "no leaf certificate in the chain" : `${leaves.length} candidate leaf certificates in the chain` };
}

/**
 * Validate the path from `leaf` through `pool` to one of `anchors` at time `at`.
 * `pool` may contain the leaf, intermediates and root certificates in any order.
 */
export function validatePath(leaf: Certificate, pool: readonly Certificate[], anchors: readonly TrustAnchor[], at: Date): Result<ValidPath> {
  const path: Certificate[] = [leaf];
  for (;;) {
    const cur = path[path.length - 1]!;
    const bad = within(cur, at) ?? unknownCritical(cur);
    if (bad) return { ok: false, reason: bad };

    // Does an anchor's key sign this certificate (or is this certificate the anchor itself)?
    for (const anchor of anchors) {
      if (!equalBytes(anchor.cert.subject, cur.issuer)) continue;
      if (!verifySignedBy(cur, anchor.cert)) continue;
      const anchorBad = within(anchor.cert, at);
      if (anchorBad) return { ok: false, reason: `trust anchor ${anchorBad}` };
      // A self-issued certificate signed by the anchor key is the root itself (possibly an older
      // certificate of the same key): keep it out of the path, the anchor stands for it.
      if (isSelfIssued(cur)) {
        if (path.length === 1) return { ok: false, reason: `${cur.subjectText} is a root, not a leaf certificate` };
        if (!equalBytes(cur.spki, anchor.cert.spki)) continue;
        path.pop();
      }
      const stray = unaccounted(pool, path, anchor);
      if (stray) return { ok: false, reason: stray };
      if (anchor.cert.basicConstraints?.pathLen !== undefined && anchor.cert.basicConstraints.pathLen < path.length - 1) {
        return { ok: false, reason: `trust anchor path length constraint ${anchor.cert.basicConstraints.pathLen} exceeded` };
      }
      return { ok: true, value: { path, anchor } };
    }
    if (isSelfIssued(cur)) {
      return { ok: false, reason: `chain ends at ${cur.subjectText}, which is not a trusted root (anchors are matched by public key)` };
    }
    if (path.length >= MAX_PATH) return { ok: false, reason: `chain longer than ${MAX_PATH} certificates` };

    const issuer = pool.find((c) => c !== cur && equalBytes(c.subject, cur.issuer) && !path.includes(c) && verifySignedBy(cur, c));
    if (!issuer) {
      const named = pool.some((c) => c !== cur && equalBytes(c.subject, cur.issuer));
      return {
        ok: false,
        reason: named
          ? `signature of ${cur.subjectText} does not verify under its issuer ${cur.issuerText}`
          : `issuer ${cur.issuerText} of ${cur.subjectText} is neither in the chain nor a trusted root`,
      };
    }
    if (!issuer.basicConstraints?.ca) return { ok: false, reason: `${issuer.subjectText} issues certificates but is not a CA` };
    if (issuer.keyUsage && !issuer.keyUsage.keyCertSign) return { ok: false, reason: `${issuer.subjectText} key usage does not allow certificate signing` };
    if (issuer.basicConstraints.pathLen !== undefined && issuer.basicConstraints.pathLen < path.length - 1) {
      return { ok: false, reason: `${issuer.subjectText} path length constraint ${issuer.basicConstraints.pathLen} exceeded` };
    }
    path.push(issuer);
  }
}
