/**
 * X.509 certificates and CRLs (RFC 5280), parsed from DER with der.ts. Pure; no I/O; byte fields
 * are subarrays of the input (no copies). Only the structure is checked here: signatures, validity
 * windows, chains and critical-extension policy are the callers' business.
 *
 * Errors are DerError: encoding problems keep their DER_* codes; a well-formed encoding that is
 * not the expected structure is X509_STRUCTURE (certificates) or CRL_STRUCTURE (CRLs); an outer
 * signature algorithm that differs from the signed one is X509_SIGALG_MISMATCH; an EC key we
 * cannot represent is X509_KEY_UNSUPPORTED.
 */
export { OID, ecdsaSignatureHash } from "./signed.js";
export type { Extension, KeyUsage, BasicConstraints } from "./extensions.js";
export { ecJwk, type EcJwk, type PublicKey } from "./public-key.js";
export { parseCertificate, type Certificate } from "./certificate.js";
export { parseCrl, type Crl } from "./crl.js";
