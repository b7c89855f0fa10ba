/**
 * Every error the package throws: one base class, one subclass per family, and the union of
 * every `code`, so that `switch (err.code)` narrows. Codes are stable API (callers and tests
 * switch on them, the CLI prints them); a family's constructor takes only its own codes.
 *
 * A message is for people and never carries a code: whoever shows both (the CLI, a verdict's
 * detail) joins them, and a wrapped failure stays reachable as `cause`.
 */

/** The codes, per family. `ErrorCode` and each family's union are derived from this list. */
export const ERROR_CODES = {
  /** QuoteFormatError */
  quote: [
    "QUOTE_INPUT",
    "QUOTE_TOO_LARGE",
    "QUOTE_TRUNCATED",
    "QUOTE_LENGTH_MISMATCH",
    "QUOTE_VERSION_UNSUPPORTED",
    "QUOTE_TEE_TYPE",
    "QUOTE_KEY_TYPE_UNSUPPORTED",
    "QUOTE_BODY_TYPE",
    "QUOTE_BODY_SIZE",
    "QUOTE_CERT_DATA_TYPE",
  ],
  /** DerError: DER encoding, PEM armour, X.509 / CRL structure, the PCK certificate's SGX extension. */
  der: [
    "DER_TRUNCATED",
    "DER_LENGTH",
    "DER_INDEFINITE",
    "DER_TAG",
    "DER_DEPTH",
    "DER_TRAILING",
    "DER_INTEGER",
    "DER_BOOLEAN",
    "DER_NULL",
    "DER_OID",
    "DER_BITSTRING",
    "DER_TIME",
    "DER_RANGE",
    "PEM_INVALID",
    "X509_STRUCTURE",
    "CRL_STRUCTURE",
    "X509_SIGALG_UNSUPPORTED",
    "X509_SIGALG_MISMATCH",
    "X509_KEY_UNSUPPORTED",
    "PCK_EXTENSION_INVALID",
    "PCK_EXTENSION_MISSING",
  ],
  /** CollateralError (which also keeps the DerError code of a piece that does not parse). */
  collateral: [
    "COLLATERAL_UNREADABLE",
    "COLLATERAL_JSON",
    "COLLATERAL_INVALID",
    "COLLATERAL_MISSING",
    "COLLATERAL_MISMATCH",
    "COLLATERAL_SIGNATURE",
    "COLLATERAL_UNAVAILABLE",
    "PCCS_UNREACHABLE",
    "PCCS_TIMEOUT",
    "PCCS_HTTP_STATUS",
    "PCCS_RESPONSE_TOO_LARGE",
    "PCCS_HEADER_MISSING",
    "PCCS_RESPONSE_INVALID",
  ],
  /** InputError: the caller's values, files and keys. */
  input: [
    "INPUT_UNREADABLE",
    "TIME_INVALID",
    "VERIFY_TIME_INVALID",
    "TRUST_ROOT_INVALID",
    "COLLATERAL_KEY_INVALID",
    "PCCS_URL_INVALID",
    "PCCS_URL_INSECURE",
    "PCCS_OPTIONS_INVALID",
    "PCK_CHAIN_MISSING",
    "PCK_CHAIN_UNTRUSTED",
    "PCK_CA_UNKNOWN",
    "DER_ENCODE",
    "X509_BUILD",
    "X509_BUILD_KEY",
    "SGX_EXTENSION_BUILD",
    "CLAIMS_BUILD",
    "IDENTITY_OPTIONS_INVALID",
    "DEV_OPTIONS_INVALID",
  ],
  /** CborError */
  cbor: ["CBOR_TRUNCATED", "CBOR_TRAILING", "CBOR_INDEFINITE", "CBOR_RESERVED", "CBOR_DEPTH", "CBOR_UTF8", "CBOR_MAP_KEY", "CBOR_DUPLICATE_KEY", "CBOR_TAG", "CBOR_UNSUPPORTED"],
  /** RaTlsError */
  ratls: ["RATLS_NO_EVIDENCE", "RATLS_TAGGED_EVIDENCE", "RATLS_CLAIMS", "RATLS_CRITICAL_EXTENSION"],
  /** AttestationError: producing evidence. */
  attestation: [
    "REPORT_DATA_SIZE",
    "QUOTE_UNBOUND",
    "GRAMINE_UNAVAILABLE",
    "GRAMINE_ATTESTATION_TYPE",
    "GRAMINE_WRITE",
    "GRAMINE_QUOTE",
    "TDX_UNAVAILABLE",
    "TDX_PROVIDER",
    "TDX_WRITE",
    "TDX_GENERATION",
    "TDX_QUOTE",
    "DEV_PKI_INCOMPLETE",
  ],
  /** ConfigError, ClientPolicyError */
  config: ["CONFIG_INVALID", "CLIENT_POLICY_INVALID"],
  /** PolicyError */
  policy: ["POLICY_INVALID"],
  /** WorkerError */
  worker: ["WORKER_START_FAILED", "WORKER_EXITED"],
  /** BridgeError */
  bridge: ["REMOTE_INVALID", "REMOTE_UNREACHABLE", "LISTEN_INVALID", "LISTEN_NOT_LOOPBACK", "BEARER_FILE_INVALID"],
  /** ConnectorError, ExchangeFailure */
  connector: ["URL_INVALID", "INSECURE_URL", "CONNECT_TIMEOUT", "CONNECTION_LOST", "EVIDENCE_EXCHANGE_FAILED"],
  /** AttestationRejectedError (client/errors.ts): the verdict is the payload. */
  rejected: ["ATTESTATION_REJECTED"],
  /** AppraisalTimeout: a client certificate's appraisal outran its bound. */
  appraisal: ["CLIENT_APPRAISAL_TIMEOUT"],
  /** AuthKeysError: the authorization server's metadata or keys, which `auth.mode: oauth` checks tokens against. */
  authKeys: ["AUTH_METADATA_UNAVAILABLE", "AUTH_METADATA_INVALID", "AUTH_JWKS_UNAVAILABLE", "AUTH_JWKS_INVALID"],
} as const;

export type ErrorFamily = keyof typeof ERROR_CODES;
type CodesOf<F extends ErrorFamily> = (typeof ERROR_CODES)[F][number];

export type QuoteFormatCode = CodesOf<"quote">;
export type DerCode = CodesOf<"der">;
export type CollateralCode = CodesOf<"collateral">;
export type InputCode = CodesOf<"input">;
export type CborCode = CodesOf<"cbor">;
export type RaTlsCode = CodesOf<"ratls">;
export type EvidenceCode = QuoteFormatCode | DerCode | CollateralCode | InputCode | CborCode | RaTlsCode;
export type AttestationCode = CodesOf<"attestation">;
export type ConfigCode = CodesOf<"config">;
export type PolicyCode = CodesOf<"policy">;
export type WorkerCode = CodesOf<"worker">;
export type BridgeCode = CodesOf<"bridge">;
export type ConnectorCode = CodesOf<"connector">;
export type AuthKeysCode = CodesOf<"authKeys">;
export type ErrorCode = CodesOf<ErrorFamily>;

/** Every code, flat. */
export const ALL_ERROR_CODES: readonly ErrorCode[] = Object.values(ERROR_CODES).flat();

/** The base of every error the package throws. */
export class AttestableMcpError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

// ---- evidence: parsing and verifying quotes, certificates, collateral -------------------------

/**
 * Errors of the evidence core. Byte parsers set `offset`, where the bytes went wrong; the message
 * then ends with it.
 */
export class EvidenceError<C extends EvidenceCode = EvidenceCode> extends AttestableMcpError<C> {
  readonly offset: number | undefined;
  constructor(code: C, message: string, offset?: number, options?: ErrorOptions) {
    super(code, offset === undefined ? message : `${message} (at offset ${offset})`, options);
    this.offset = offset;
  }
}

/** The quote bytes do not have the layout they claim. */
export class QuoteFormatError extends EvidenceError<QuoteFormatCode> {}

/** DER / X.509 / CRL bytes are malformed or use something we do not support. */
export class DerError extends EvidenceError<DerCode> {}

/** Collateral (TCB info, QE identity, CRLs, issuer chains) is malformed, missing a piece, or unavailable. */
export class CollateralError extends EvidenceError<CollateralCode | DerCode> {}

/** Caller-side misuse: bad option value, unreadable input file. */
export class InputError extends EvidenceError<InputCode> {}

/** CBOR bytes are malformed or use something evidence never needs. */
export class CborError extends EvidenceError<CborCode> {}

/** An RA-TLS certificate's evidence extensions are missing or malformed. */
export class RaTlsError extends EvidenceError<RaTlsCode> {}

// ---- the other families --------------------------------------------------------------------

/** The provider cannot produce evidence: missing device files, wrong attestation type, bad input. */
export class AttestationError extends AttestableMcpError<AttestationCode> {}

/** The serve configuration is invalid: `key` is the config key, `source` the file, variable or flag it came from. */
export class ConfigError extends AttestableMcpError<ConfigCode> {
  constructor(
    readonly key: string,
    readonly source: string,
    readonly reason: string,
    code: ConfigCode = "CONFIG_INVALID",
    options?: ErrorOptions,
  ) {
    super(code, `${source}: ${key}: ${reason}`, options);
  }
}

/** The client policy file is unusable for mutual attestation; `policyKey` is the key inside it (null: the file itself). */
export class ClientPolicyError extends ConfigError {
  constructor(
    readonly policyKey: string | null,
    source: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super("clientAttestation.policy", source, policyKey === null ? reason : `${policyKey}: ${reason}`, "CLIENT_POLICY_INVALID", options);
  }
}

/** A policy file or document is invalid: `key` is the policy key, `source` the file. */
export class PolicyError extends AttestableMcpError<PolicyCode> {
  constructor(
    readonly key: string,
    readonly source: string,
    readonly reason: string,
  ) {
    super("POLICY_INVALID", `${source}: ${key}: ${reason}`);
  }
}

/** A worker could not start or ended on its own. */
export class WorkerError extends AttestableMcpError<WorkerCode> {}

/** The bridge cannot start: a bad --remote or --listen, or a remote that cannot be reached. */
export class BridgeError extends AttestableMcpError<BridgeCode> {}

/**
 * Usage and connection-level failures of the connector (not verdicts): a plaintext URL, a
 * connection that did not finish within its bound.
 */
export class ConnectorError extends AttestableMcpError<ConnectorCode> {}

/** Why the fresh-evidence exchange itself failed; becomes the detail of a failed `freshness.response`. */
export class ExchangeFailure extends ConnectorError {
  constructor(message: string) {
    super("EVIDENCE_EXCHANGE_FAILED", message);
  }
}

/** A client certificate's appraisal took longer than its bound (the client is rejected, not remembered). */
export class AppraisalTimeout extends AttestableMcpError<"CLIENT_APPRAISAL_TIMEOUT"> {
  constructor(ms: number) {
    super("CLIENT_APPRAISAL_TIMEOUT", `the appraisal took longer than ${ms} ms`);
  }
}

/**
 * The keys that OAuth access tokens are checked against cannot be had: the authorization server's
 * metadata or JWKS is unreachable, answers an error, or is not what it must be. A request that
 * needs them is refused (503), never let through.
 */
export class AuthKeysError extends AttestableMcpError<AuthKeysCode> {}
