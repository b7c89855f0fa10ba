/**
 * Signature verification through Node's crypto (OpenSSL). Two caches keep this off the hot path:
 * - KeyObjects by public point: building one costs more than a verification (~90 µs vs ~70 µs);
 * - results of certificate / CRL signature checks, keyed by SHA-256 of the signed bytes, the
 *   signature and the issuer's key. A hit means "these exact bytes were already verified under
 *   this exact key", which is as strong as verifying again. Quote signatures are never memoised.
 */
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import { toHex } from "../../core/bytes.js";
import { ecdsaSignatureHash, ecJwk, type Certificate, type Crl } from "../asn1/x509.js";

const MAX_CACHE = 4096;
const keyCache = new Map<string, KeyObject>();
const verifiedCache = new Set<string>();

function ecKey(point: Uint8Array, curve: string): KeyObject {
  const id = curve + toHex(point);
  let key = keyCache.get(id);
  if (key === undefined) {
    key = createPublicKey({ key: ecJwk(point, curve), format: "jwk" });
    if (keyCache.size >= MAX_CACHE) keyCache.clear();
    keyCache.set(id, key);
  }
  return key;
}

/** Raw P-256 public key (x‖y, 64 bytes, as in quotes) → cached KeyObject. */
function rawP256Key(xy: Uint8Array): KeyObject {
  const point = new Uint8Array(65);
  point[0] = 0x04;
  point.set(xy, 1);
  return ecKey(point, "P-256");
}

/** ECDSA P-256 / SHA-256 with an r‖s signature, as quotes and Intel collateral carry them. */
export function verifyRawP256(data: Uint8Array, signature: Uint8Array, publicKeyXY: Uint8Array): boolean {
  if (signature.length !== 64 || publicKeyXY.length !== 64) return false;
  try {
    return verify("sha256", data, { key: rawP256Key(publicKeyXY), dsaEncoding: "ieee-p1363" }, signature);
  } catch {
    // An off-curve point or malformed signature is a failed check, not an exception.
    return false;
  }
}

/**
 * Same, with the key taken from a certificate (the PCK leaf, the TCB signing certificate).
 * `memo`: remember success for these exact bytes and key (collateral bodies, reused across quotes).
 */
export function verifyRawByCert(data: Uint8Array, signature: Uint8Array, signer: Certificate, memo = false): boolean {
  const pk = signer.publicKey;
  if (pk.algorithm !== "EC" || signature.length % 2 !== 0) return false;
  const id = memo ? createHash("sha256").update(data).update(signature).update(pk.point).digest("hex") : "";
  if (memo && verifiedCache.has(id)) return true;
  let ok: boolean;
  try {
    ok = verify(ecdsaHashForCurve(pk.curve), data, { key: ecKey(pk.point, pk.curve), dsaEncoding: "ieee-p1363" }, signature);
  } catch {
    ok = false;
  }
  if (ok && memo) remember(id);
  return ok;
}

function remember(id: string): void {
  if (verifiedCache.size >= MAX_CACHE) verifiedCache.clear();
  verifiedCache.add(id);
}

function ecdsaHashForCurve(curve: string): string {
  return curve === "P-384" ? "sha384" : curve === "P-521" ? "sha512" : "sha256";
}

/** X.509 signature (certificate or CRL) by `issuer`'s key; memoised on the exact bytes and key. */
export function verifySignedBy(signed: Certificate | Crl, issuer: Certificate): boolean {
  const pk = issuer.publicKey;
  if (pk.algorithm !== "EC") return false;
  let hash: string;
  try {
    hash = ecdsaSignatureHash(signed.signatureAlgorithm);
  } catch {
    return false;
  }
  const id = createHash("sha256").update(signed.tbs).update(signed.signature).update(pk.point).digest("hex");
  if (verifiedCache.has(id)) return true;
  let ok = false;
  try {
    ok = verify(hash, signed.tbs, ecKey(pk.point, pk.curve), signed.signature);
  } catch {
    ok = false;
  }
  if (ok) remember(id);
  return ok;
}

/** For benchmarks and tests that measure or exercise the cold path. */
export function clearSignatureCaches(what: { keys?: boolean; results?: boolean } = { keys: true, results: true }): void {
  if (what.keys) keyCache.clear();
  if (what.results) verifiedCache.clear();
}
