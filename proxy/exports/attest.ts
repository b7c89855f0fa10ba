/**
 * `attestable-mcp-proxy/attest`: producing evidence. The provider interface and the Gramine
 * provider (quotes from /dev/attestation inside an SGX enclave), the TDX provider (configfs-tsm
 * inside a TDX confidential VM), an RA-TLS identity minted once
 * (`mintIdentity`) or kept current by rotation (`Identity`), and the builders of the claims,
 * report data and RA-TLS certificate for whoever mints its own. The development provider is in
 * `attestable-mcp-proxy/dev`, never here.
 */
export { REPORT_DATA_BYTES } from "../attest/provider.js";
export type { AttestationProvider } from "../attest/provider.js";
export { GramineProvider, GRAMINE_ATTESTATION_DIR } from "../attest/gramine.js";
export { TdxProvider, TSM_REPORT_DIR } from "../attest/tdx.js";
export type { TdxProviderOptions } from "../attest/tdx.js";
export { Identity, mintIdentity } from "../attest/identity.js";
export type { MintedIdentity, IdentityOptions, KeyType } from "../attest/identity.js";
export { buildClaims, buildRaTlsCertificate, taggedReportData, legacyReportData, spkiOf } from "../attest/build/ratls.js";
export type { RaTlsCertificateSpec } from "../attest/build/ratls.js";
export { AttestationError } from "../core/errors.js";
export type { AttestationCode } from "../core/errors.js";
