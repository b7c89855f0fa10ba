/**
 * `attestable-mcp-proxy/verify`: judging evidence, bytes in and verdict out. Parse and verify SGX /
 * TDX DCAP quotes and RA-TLS certificates, load collateral (PCS-layout files, or whatever a policy
 * names: files, a PCCS, the disk cache), load a policy and appraise a certificate against it, and
 * catch the evidence errors by class or by `code`. Importing it loads no server, client, CLI or dev
 * code, so a verifier embedded elsewhere carries only what verifies.
 */
export { parseQuote, isDebug, isTdDebug, MAX_QUOTE_BYTES } from "../evidence/dcap/quote.js";
export type { Quote, SgxQuote, TdxQuote, SgxReportBody, TdReportBody, QuoteHeader, CertificationData } from "../evidence/dcap/quote.js";
export { verifyQuote, quoteFields } from "../evidence/dcap/verify.js";
export type { VerifyOptions } from "../evidence/dcap/verify.js";
export type { Verdict, Check, CheckName, QuoteFields, SgxQuoteFields, TdxQuoteFields, PlatformFields, TcbFields, TcbStatus } from "../evidence/verdict.js";
export { verifyRaTlsCertificate } from "../evidence/ratls/verify.js";
export type { RaTlsVerdict } from "../evidence/ratls/verify.js";
export { readRaTls, readRaTlsCertificate, checkBinding } from "../evidence/ratls/read.js";
export type { RaTlsEvidence, ParsedRaTls, BindingCheck, RaTlsExtensionKind } from "../evidence/ratls/read.js";
export { loadCollateral } from "../evidence/dcap/collateral-files.js";
export { prepareCollateral, parseTcbInfo, parseQeIdentity } from "../evidence/dcap/collateral.js";
export type { Collateral, CollateralParts, TcbInfo, QeIdentity } from "../evidence/dcap/collateral.js";
export { INTEL_SGX_ROOT_CA_PEM } from "../evidence/dcap/roots.js";
export { loadPolicy, buildPolicy, applyPolicy } from "../evidence/policy.js";
export type { Policy, MeasurementRule, Freshness } from "../evidence/policy.js";
export { appraiseCertificate, appraiseParsed } from "../evidence/appraise.js";
export type { Appraisal, AppraisedQuote, CollateralInfo, CollateralSource } from "../evidence/appraise.js";
export { collateralSource } from "../collateral/source.js";
export { AttestableMcpError, EvidenceError, QuoteFormatError, DerError, CollateralError, InputError, CborError, RaTlsError, PolicyError } from "../core/errors.js";
export type { ErrorCode, EvidenceCode, QuoteFormatCode, DerCode, CollateralCode, InputCode, CborCode, RaTlsCode, PolicyCode } from "../core/errors.js";
