/**
 * DCAP collateral: TCB info (v2, v3) and QE identity (v2) as Intel's PCS / a PCCS serves them,
 * with their issuer chains and signatures, plus the PCK CRL and the root CA CRL.
 *
 * `prepareCollateral` parses and validates shapes once (pure, no I/O); `checkCollateral` verifies
 * signatures and freshness at a given time against the trust anchors. Signatures are checked
 * over the raw text of the inner object exactly as served.
 */
import { equalBytes, fromHex } from "../../core/bytes.js";
import { findLeaf, validatePath } from "./chain.js";
import { CollateralError, DerError } from "../../core/errors.js";
import { pemBlocks } from "../asn1/pem.js";
import { rawMembers } from "./raw-json.js";
import type { TrustAnchor } from "./roots.js";
import { verifyRawByCert, verifySignedBy } from "./signatures.js";
import { parseCertificate, parseCrl, type Certificate, type Crl } from "../asn1/x509.js";
import { parseTcbInfo, type TcbInfo } from "./tcb-info.js";
import { parseQeIdentity, type QeIdentity } from "./qe-identity.js";

export { TCB_STATUSES, type QeTcbLevel } from "./collateral-fields.js";
export { parseTcbInfo, type TcbInfo, type TcbLevel, type TdxModuleIdentity } from "./tcb-info.js";
export { parseQeIdentity, type QeIdentity } from "./qe-identity.js";

export interface SignedJson<T> {
  /** The exact bytes the signature covers. */
  bytes: Uint8Array;
  /** ECDSA P-256 r‖s. */
  signature: Uint8Array;
  issuerChain: Certificate[];
  parsed: T;
}

export interface Collateral {
  tcbInfo: SignedJson<TcbInfo>;
  qeIdentity: SignedJson<QeIdentity>;
  pckCrl: Crl;
  pckCrlIssuerChain: Certificate[];
  rootCaCrl: Crl;
}

/** The pieces as text / bytes, whatever the source layout (PCS directory, dcap-qvl JSON). */
export interface CollateralParts {
  tcbInfo: string;
  tcbInfoSignature: Uint8Array;
  tcbInfoIssuerChain: string;
  qeIdentity: string;
  qeIdentitySignature: Uint8Array;
  qeIdentityIssuerChain: string;
  pckCrl: Uint8Array;
  pckCrlIssuerChain: string;
  rootCaCrl: Uint8Array;
}

// ---- assembling ----------------------------------------------------------------------------

function chain(pem: string, what: string): Certificate[] {
  const ders = wrap(what, () => pemBlocks(pem));
  if (ders.length === 0) throw new CollateralError("COLLATERAL_MISSING", `${what}: no certificate found`);
  return ders.map((d, i) => wrap(`${what} certificate #${i + 1}`, () => parseCertificate(d)));
}

function crl(bytes: Uint8Array, what: string): Crl {
  // PCS serves CRLs as DER or PEM depending on the request; accept both.
  const head = Buffer.from(bytes.subarray(0, 32)).toString("latin1");
  const der = head.includes("-----BEGIN") ? wrap(what, () => pemBlocks(Buffer.from(bytes).toString("latin1"), "X509 CRL"))[0] : bytes;
  if (!der) throw new CollateralError("COLLATERAL_MISSING", `${what}: no CRL found`);
  return wrap(what, () => parseCrl(der));
}

function wrap<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CollateralError) throw e;
    // A piece that does not parse keeps the parser's code.
    throw new CollateralError(e instanceof DerError ? e.code : "COLLATERAL_INVALID", `${what}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

function signature(sig: Uint8Array, what: string): Uint8Array {
  if (sig.length !== 64) throw new CollateralError("COLLATERAL_INVALID", `${what}: signature must be 64 bytes (r‖s), got ${sig.length}`);
  return sig;
}

export function prepareCollateral(p: CollateralParts): Collateral {
  return {
    tcbInfo: {
      bytes: new TextEncoder().encode(p.tcbInfo),
      signature: signature(p.tcbInfoSignature, "tcbInfo"),
      issuerChain: chain(p.tcbInfoIssuerChain, "TCB info issuer chain"),
      parsed: parseTcbInfo(p.tcbInfo),
    },
    qeIdentity: {
      bytes: new TextEncoder().encode(p.qeIdentity),
      signature: signature(p.qeIdentitySignature, "enclaveIdentity"),
      issuerChain: chain(p.qeIdentityIssuerChain, "QE identity issuer chain"),
      parsed: parseQeIdentity(p.qeIdentity),
    },
    pckCrl: crl(p.pckCrl, "PCK CRL"),
    pckCrlIssuerChain: chain(p.pckCrlIssuerChain, "PCK CRL issuer chain"),
    rootCaCrl: crl(p.rootCaCrl, "root CA CRL"),
  };
}

/** A PCS / PCCS response body `{"tcbInfo": {...}, "signature": "hex"}` → the signed text and signature. */
export function splitSignedBody(body: string, member: "tcbInfo" | "enclaveIdentity", what: string): { text: string; signature: Uint8Array } {
  const { value, raw } = rawMembers(body, what);
  const text = raw.get(member);
  if (text === undefined) throw new CollateralError("COLLATERAL_MISSING", `${what}: no "${member}" member`);
  const sig = value.signature;
  if (typeof sig !== "string" || sig.length !== 128 || !/^[0-9a-fA-F]*$/.test(sig)) {
    throw new CollateralError("COLLATERAL_INVALID", `${what}: "signature" must be 64 bytes of hex`);
  }
  return { text, signature: fromHex(sig) };
}

// ---- verification --------------------------------------------------------------------------

export interface CollateralCheck {
  signature: { ok: boolean; detail: string };
  /** `stale`: the only problem is a passed nextUpdate (never set for pieces issued in the future). */
  fresh: { ok: boolean; detail: string; nextUpdate: Date; issued: Date; stale: boolean };
}

function verifySignedJson(s: SignedJson<unknown>, what: string, anchor: TrustAnchor, at: Date): string | null {
  const found = findLeaf(s.issuerChain);
  if (!found.ok) return `${what} issuer chain: ${found.reason}`;
  const signer = found.value;
  const path = validatePath(signer, s.issuerChain, [anchor], at);
  if (!path.ok) return `${what} issuer chain: ${path.reason}`;
  if (!verifyRawByCert(s.bytes, s.signature, signer, true)) return `${what} signature does not verify under ${signer.subjectText}`;
  return null;
}

/**
 * Signatures: TCB info and QE identity by their signing certificate, chained to `anchor` (the
 * anchor of the PCK chain: collateral from another root never vouches for this quote); the root
 * CA CRL by the anchor. The PCK CRL is checked against the PCK chain by the caller, which knows
 * which CA issued the PCK certificate.
 */
export function checkCollateral(c: Collateral, anchor: TrustAnchor, at: Date): CollateralCheck {
  const problems: string[] = [];
  const t = verifySignedJson(c.tcbInfo, "TCB info", anchor, at);
  if (t) problems.push(t);
  const q = verifySignedJson(c.qeIdentity, "QE identity", anchor, at);
  if (q) problems.push(q);
  if (!verifySignedBy(c.rootCaCrl, anchor.cert)) problems.push(`root CA CRL is not signed by ${anchor.cert.subjectText}`);
  // The TCB signing certificate is issued by the root: the root CA CRL covers it.
  for (const cert of [...c.tcbInfo.issuerChain, ...c.qeIdentity.issuerChain]) {
    if (equalBytes(cert.issuer, c.rootCaCrl.issuer) && !equalBytes(cert.issuer, cert.subject) && c.rootCaCrl.revoked.has(cert.serialHex))
      problems.push(`${cert.subjectText} (serial ${cert.serialHex}) is revoked by the root CA CRL`);
  }

  const pieces: [string, Date, Date | null][] = [
    ["TCB info", c.tcbInfo.parsed.issueDate, c.tcbInfo.parsed.nextUpdate],
    ["QE identity", c.qeIdentity.parsed.issueDate, c.qeIdentity.parsed.nextUpdate],
    ["PCK CRL", c.pckCrl.thisUpdate, c.pckCrl.nextUpdate],
    ["root CA CRL", c.rootCaCrl.thisUpdate, c.rootCaCrl.nextUpdate],
  ];
  const stale: string[] = [];
  let future = false;
  let nextUpdate = new Date(8.64e15);
  let oldest = new Date(8.64e15);
  for (const [name, issued, next] of pieces) {
    if (at < issued) {
      stale.push(`${name} is issued ${issued.toISOString()}, after the verification time`);
      future = true;
    }
    if (issued < oldest) oldest = issued;
    if (next !== null) {
      if (at > next) stale.push(`${name} nextUpdate ${next.toISOString()} has passed`);
      if (next < nextUpdate) nextUpdate = next;
    }
  }
  return {
    signature: problems.length ? { ok: false, detail: problems.join("; ") } : { ok: true, detail: `TCB info, QE identity and root CA CRL signed under ${anchor.cert.subjectText}` },
    fresh: stale.length
      ? { ok: false, detail: stale.join("; "), nextUpdate, issued: oldest, stale: !future }
      : { ok: true, detail: `all collateral current until ${nextUpdate.toISOString()}`, nextUpdate, issued: oldest, stale: false },
  };
}
