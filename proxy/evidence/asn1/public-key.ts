/** SubjectPublicKeyInfo: the key's algorithm and, for the named EC curves, its point; and the JWK Node verifies with. */
import { DerError, type DerCode } from "../../core/errors.js";
import { DerSeq, Tag, readBitStringBytes, readOid, type Tlv } from "./der.js";
import { OID, algorithmIdentifier } from "./signed.js";

export type PublicKey =
  | { algorithm: "EC"; curve: "P-256" | "P-384" | "P-521" | string; point: Uint8Array /* 0x04 ‖ x ‖ y for the named curves */ }
  | { algorithm: "RSA" | "RSA-PSS" | "DSA" | "Ed25519" | "Ed448" | "other"; oid: string };

const CURVES: Record<string, string> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
};
const CURVE_FIELD_BYTES: Record<string, number> = { "P-256": 32, "P-384": 48, "P-521": 66 };

const KEY_ALGORITHMS: Record<string, "RSA" | "RSA-PSS" | "DSA" | "Ed25519" | "Ed448"> = {
  "1.2.840.113549.1.1.1": "RSA",
  "1.2.840.113549.1.1.10": "RSA-PSS",
  "1.2.840.10040.4.1": "DSA",
  "1.3.101.112": "Ed25519",
  "1.3.101.113": "Ed448",
};

export function publicKeyOf(buf: Uint8Array, spki: Tlv, path: string, code: DerCode): PublicKey {
  const r = new DerSeq(buf, spki, path, code);
  const alg = algorithmIdentifier(buf, r.next(Tag.SEQUENCE, "algorithm"), `${path}.algorithm`, code);
  const key = readBitStringBytes(buf, r.next(Tag.BIT_STRING, "subjectPublicKey"), `${path}.subjectPublicKey`);
  r.finish();
  if (alg.oid !== OID.ecPublicKey) return { algorithm: KEY_ALGORITHMS[alg.oid] ?? "other", oid: alg.oid };
  if (alg.params === null) throw new DerError(code, `${path}.algorithm.parameters: EC key without curve parameters`, spki.start);
  if (alg.params.tag !== Tag.OID) {
    // Explicit curve parameters (or implicitlyCA): representable, but never usable by us.
    return { algorithm: "EC", curve: alg.params.tag === Tag.SEQUENCE ? "explicit" : "implicit", point: key };
  }
  const curveOid = readOid(buf, alg.params, `${path}.algorithm.parameters`);
  const curve = CURVES[curveOid];
  if (curve === undefined) return { algorithm: "EC", curve: curveOid, point: key };
  const n = CURVE_FIELD_BYTES[curve]!;
  if (key.length !== 1 + 2 * n || key[0] !== 0x04) {
    throw new DerError(
      "X509_KEY_UNSUPPORTED",
      `${path}.subjectPublicKey: ${curve} key must be an uncompressed ${1 + 2 * n}-byte point, found ${key.length} bytes starting 0x${(key[0] ?? 0).toString(16)}`,
      spki.start,
    );
  }
  return { algorithm: "EC", curve, point: key };
}

export type EcJwk = { kty: "EC"; crv: string; x: string; y: string };

/** JWK for crypto.createPublicKey({ key, format: "jwk" }) from an uncompressed point. */
export function ecJwk(point: Uint8Array, curve: string): EcJwk {
  const n = CURVE_FIELD_BYTES[curve];
  if (n === undefined) throw new DerError("X509_KEY_UNSUPPORTED", `EC curve ${curve} is not supported (P-256, P-384, P-521 are)`);
  if (point.length !== 1 + 2 * n || point[0] !== 0x04) {
    throw new DerError("X509_KEY_UNSUPPORTED", `${curve} public key must be an uncompressed ${1 + 2 * n}-byte point, found ${point.length} bytes`);
  }
  const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64url");
  return { kty: "EC", crv: curve, x: b64u(point.subarray(1, 1 + n)), y: b64u(point.subarray(1 + n)) };
}
