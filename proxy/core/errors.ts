/**
 * Typed errors for everything under evidence/. Each has a stable `code` callers may switch on,
 * and a message that names the failed check and, for byte parsers, the offset where it failed.
 */
export class EvidenceError extends Error {
  readonly code: string;
  readonly offset: number | undefined;
  constructor(code: string, message: string, offset?: number) {
    super(offset === undefined ? message : `${message} (at offset ${offset})`);
    this.name = new.target.name;
    this.code = code;
    this.offset = offset;
  }
}

/** The quote bytes do not have the layout they claim. */
export class QuoteFormatError extends EvidenceError {}

/** DER / X.509 / CRL bytes are malformed or use something we do not support. */
export class DerError extends EvidenceError {}

/** Collateral (TCB info, QE identity, CRLs, issuer chains) is malformed or missing a piece. */
export class CollateralError extends EvidenceError {}

/** Caller-side misuse: bad option value, unreadable input file. */
export class InputError extends EvidenceError {}

/** CBOR bytes are malformed or use something evidence never needs. */
export class CborError extends EvidenceError {}

/** An RA-TLS certificate's evidence extensions are missing or malformed. */
export class RaTlsError extends EvidenceError {}
