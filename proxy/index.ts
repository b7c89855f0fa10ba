/** The library: the evidence core, shared by every side. */
export { parseQuote, isDebug, isTdDebug, MAX_QUOTE_BYTES } from "./evidence/quote.js";
export type { Quote, SgxQuote, TdxQuote, SgxReportBody, TdReportBody, QuoteHeader, CertificationData } from "./evidence/quote.js";
export { verifyQuote, quoteFields } from "./evidence/verify.js";
export type { VerifyOptions } from "./evidence/verify.js";
export type { Verdict, Check, CheckName, QuoteFields, PlatformFields, TcbFields, TcbStatus } from "./evidence/verdict.js";
export { loadCollateral } from "./evidence/collateral-files.js";
export { prepareCollateral, parseTcbInfo, parseQeIdentity } from "./evidence/collateral.js";
export type { Collateral, CollateralParts, TcbInfo, QeIdentity } from "./evidence/collateral.js";
export { INTEL_SGX_ROOT_CA_PEM } from "./evidence/roots.js";
export { EvidenceError, QuoteFormatError, DerError, CollateralError, InputError } from "./evidence/errors.js";
