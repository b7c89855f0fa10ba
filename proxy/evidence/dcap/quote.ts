/**
 * Intel DCAP quote parser: SGX ECDSA quote v3, and quotes v4 / v5 (SGX or TDX body).
 *
 * A pure function over bytes. Every length field is checked against what is left before it is
 * used; bytes after the signature data are ignored (real TDX quotes carry padding there). Layouts
 * follow Intel's "SGX ECDSA Quote Library API" (v3) and "TDX DCAP Quoting Library API" (v4, v5).
 */
import { EvidenceError, QuoteFormatError } from "../../core/errors.js";
import type { Result } from "../../core/result.js";

export const MAX_QUOTE_BYTES = 64 * 1024;
export const HEADER_BYTES = 48;
export const SGX_REPORT_BYTES = 384;
export const TD_REPORT_10_BYTES = 584;
export const TD_REPORT_15_BYTES = 648;
const ECDSA_SIG_BYTES = 64;
const ECDSA_KEY_BYTES = 64;

export const TEE_TYPE_SGX = 0x00000000;
export const TEE_TYPE_TDX = 0x00000081;
/** ECDSA-256-with-P-256: the only attestation key type Intel's quoting enclaves produce. */
export const ATT_KEY_TYPE_ECDSA_P256 = 2;

export const CERT_DATA_PPID_CLEAR = 1;
export const CERT_DATA_PPID_RSA2048 = 2;
export const CERT_DATA_PPID_RSA3072 = 3;
export const CERT_DATA_PCK_LEAF = 4;
export const CERT_DATA_PCK_CHAIN = 5;
export const CERT_DATA_QE_REPORT = 6;
export const CERT_DATA_PLATFORM_MANIFEST = 7;

export interface QuoteHeader {
  version: number;
  attestationKeyType: number;
  teeType: number;
  qeSvn: number;
  pceSvn: number;
  qeVendorId: Uint8Array;
  userData: Uint8Array;
}

/** SGX REPORT body (384 bytes): the ISV enclave report, and the QE report. */
export interface SgxReportBody {
  cpuSvn: Uint8Array;
  miscSelect: number;
  isvExtProdId: Uint8Array;
  /** 16 bytes: FLAGS (u64 LE) then XFRM (u64 LE). */
  attributes: Uint8Array;
  mrEnclave: Uint8Array;
  mrSigner: Uint8Array;
  configId: Uint8Array;
  isvProdId: number;
  isvSvn: number;
  configSvn: number;
  isvFamilyId: Uint8Array;
  reportData: Uint8Array;
}

/** TDX TD report body: 584 bytes (TDX 1.0) or 648 bytes (TDX 1.5, two more fields). */
export interface TdReportBody {
  teeTcbSvn: Uint8Array;
  mrSeam: Uint8Array;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  tdAttributes: Uint8Array;
  xfam: Uint8Array;
  mrTd: Uint8Array;
  mrConfigId: Uint8Array;
  mrOwner: Uint8Array;
  mrOwnerConfig: Uint8Array;
  rtmr: [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  reportData: Uint8Array;
  /** TDX 1.5 only. */
  teeTcbSvn2?: Uint8Array;
  mrServiceTd?: Uint8Array;
}

export interface CertificationData {
  type: number;
  /** The certification data bytes exactly as carried (for type 5: the PEM text, often NUL-terminated). */
  data: Uint8Array;
  /** Offset of `data` within the quote, for error messages. */
  offset: number;
}

export interface QuoteSignatureData {
  /** ECDSA P-256 signature (r‖s) by the attestation key over `signedBytes`. */
  signature: Uint8Array;
  /** Attestation public key, raw x‖y. */
  attestationKey: Uint8Array;
  /** The QE report exactly as signed by the PCK key. */
  qeReportBytes: Uint8Array;
  qeReport: SgxReportBody;
  /** ECDSA P-256 signature (r‖s) by the PCK leaf key over `qeReportBytes`. */
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  /** The certification data that identifies the PCK (type 5 carries the chain itself). */
  certification: CertificationData;
}

interface QuoteCommon {
  header: QuoteHeader;
  /** Header and body exactly as covered by the attestation key's signature. */
  signedBytes: Uint8Array;
  signatureData: QuoteSignatureData;
  /** Bytes the quote occupies; anything after this in the input is ignored. */
  length: number;
}

export interface SgxQuote extends QuoteCommon {
  teeType: "SGX";
  body: SgxReportBody;
}

export interface TdxQuote extends QuoteCommon {
  teeType: "TDX";
  /** v5 body type: 2 = TDX 1.0, 3 = TDX 1.5; for v4 always 2. */
  bodyType: number;
  body: TdReportBody;
}

export type Quote = SgxQuote | TdxQuote;

/** Bounds-checked little-endian reader over one buffer. */
class Reader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new QuoteFormatError("QUOTE_TRUNCATED", `quote truncated: ${what} needs ${n} bytes, ${this.end - this.pos} left`, this.pos);
    }
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf[this.pos]! | (this.buf[this.pos + 1]! << 8);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const b = this.buf;
    const v = (b[this.pos]! | (b[this.pos + 1]! << 8) | (b[this.pos + 2]! << 16)) + b[this.pos + 3]! * 0x1000000;
    this.pos += 4;
    return v;
  }
  /** A sub-reader over the next n bytes; this reader skips past them. */
  sub(n: number, what: string): Reader {
    this.need(n, what);
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
}

/** Length fields must agree: a declared region with bytes nobody accounts for is malformed. */
function expectConsumed(r: Reader, what: string): void {
  if (r.pos !== r.end) {
    throw new QuoteFormatError("QUOTE_LENGTH_MISMATCH", `${what} declares ${r.end - r.pos} bytes more than its fields use`, r.pos);
  }
}

function u16At(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function parseHeader(r: Reader): QuoteHeader {
  return {
    version: r.u16("header.version"),
    attestationKeyType: r.u16("header.attestationKeyType"),
    teeType: r.u32("header.teeType"),
    qeSvn: r.u16("header.qeSvn"),
    pceSvn: r.u16("header.pceSvn"),
    qeVendorId: r.bytes(16, "header.qeVendorId"),
    userData: r.bytes(20, "header.userData"),
  };
}

/** Parse a 384-byte SGX REPORT body. The caller guarantees the length. */
export function parseSgxReportBody(b: Uint8Array): SgxReportBody {
  if (b.length !== SGX_REPORT_BYTES) {
    throw new QuoteFormatError("QUOTE_TRUNCATED", `SGX report body must be ${SGX_REPORT_BYTES} bytes, got ${b.length}`);
  }
  return {
    cpuSvn: b.subarray(0, 16),
    miscSelect: (b[16]! | (b[17]! << 8) | (b[18]! << 16)) + b[19]! * 0x1000000,
    isvExtProdId: b.subarray(32, 48),
    attributes: b.subarray(48, 64),
    mrEnclave: b.subarray(64, 96),
    mrSigner: b.subarray(128, 160),
    configId: b.subarray(192, 256),
    isvProdId: u16At(b, 256),
    isvSvn: u16At(b, 258),
    configSvn: u16At(b, 260),
    isvFamilyId: b.subarray(304, 320),
    reportData: b.subarray(320, 384),
  };
}

function parseTdReportBody(b: Uint8Array): TdReportBody {
  const at = (o: number, n: number) => b.subarray(o, o + n);
  const body: TdReportBody = {
    teeTcbSvn: at(0, 16),
    mrSeam: at(16, 48),
    mrSignerSeam: at(64, 48),
    seamAttributes: at(112, 8),
    tdAttributes: at(120, 8),
    xfam: at(128, 8),
    mrTd: at(136, 48),
    mrConfigId: at(184, 48),
    mrOwner: at(232, 48),
    mrOwnerConfig: at(280, 48),
    rtmr: [at(328, 48), at(376, 48), at(424, 48), at(472, 48)],
    reportData: at(520, 64),
  };
  if (b.length === TD_REPORT_15_BYTES) {
    body.teeTcbSvn2 = at(584, 16);
    body.mrServiceTd = at(600, 48);
  }
  return body;
}

function parseCertificationData(r: Reader, what: string): CertificationData {
  const type = r.u16(`${what}.type`);
  const size = r.u32(`${what}.size`);
  const offset = r.pos;
  const data = r.bytes(size, `${what} (type ${type}, declared ${size} bytes)`);
  return { type, data, offset };
}

/** QE report, its signature, QE auth data and the inner certification data (v3 inline, v4/v5 in type 6). */
function parseQeSection(r: Reader, signature: Uint8Array, attestationKey: Uint8Array): QuoteSignatureData {
  const qeReportBytes = r.bytes(SGX_REPORT_BYTES, "QE report");
  const qeReportSignature = r.bytes(ECDSA_SIG_BYTES, "QE report signature");
  const authLen = r.u16("QE auth data size");
  const qeAuthData = r.bytes(authLen, "QE auth data");
  const certification = parseCertificationData(r, "certification data");
  return {
    signature,
    attestationKey,
    qeReportBytes,
    qeReport: parseSgxReportBody(qeReportBytes),
    qeReportSignature,
    qeAuthData,
    certification,
  };
}

/**
 * Parse a DCAP quote. Throws QuoteFormatError (with `code` and `offset`) on anything malformed or
 * unsupported; never returns a partial result.
 */
export function parseQuote(input: Uint8Array): Quote {
  if (!(input instanceof Uint8Array)) throw new QuoteFormatError("QUOTE_INPUT", "quote must be a Uint8Array");
  if (input.length > MAX_QUOTE_BYTES) {
    throw new QuoteFormatError("QUOTE_TOO_LARGE", `quote is ${input.length} bytes; the limit is ${MAX_QUOTE_BYTES}`);
  }
  const r = new Reader(input, 0, input.length);
  const header = parseHeader(r);
  const { version, teeType } = header;
  if (version !== 3 && version !== 4 && version !== 5) {
    throw new QuoteFormatError("QUOTE_VERSION_UNSUPPORTED", `quote version ${version} is not supported (3, 4, 5 are)`, 0);
  }
  if (header.attestationKeyType !== ATT_KEY_TYPE_ECDSA_P256) {
    throw new QuoteFormatError("QUOTE_KEY_TYPE_UNSUPPORTED", `attestation key type ${header.attestationKeyType} is not supported (2 = ECDSA P-256 is)`, 2);
  }
  // v3 has no TEE type (the field is reserved and zero); v4/v5 name SGX or TDX.
  if (version === 3 && teeType !== TEE_TYPE_SGX) {
    throw new QuoteFormatError("QUOTE_TEE_TYPE", `quote v3 must have TEE type 0 (SGX), got 0x${teeType.toString(16)}`, 4);
  }
  if (teeType !== TEE_TYPE_SGX && teeType !== TEE_TYPE_TDX) {
    throw new QuoteFormatError("QUOTE_TEE_TYPE", `unknown TEE type 0x${teeType.toString(16)}`, 4);
  }

  let bodyType: number;
  let bodyLen: number;
  if (version === 5) {
    const at = r.pos;
    bodyType = r.u16("body.type");
    bodyLen = r.u32("body.size");
    const expected = bodyType === 1 ? SGX_REPORT_BYTES : bodyType === 2 ? TD_REPORT_10_BYTES : bodyType === 3 ? TD_REPORT_15_BYTES : -1;
    if (expected < 0) throw new QuoteFormatError("QUOTE_BODY_TYPE", `unknown v5 body type ${bodyType}`, at);
    if (bodyLen !== expected) {
      throw new QuoteFormatError("QUOTE_BODY_SIZE", `v5 body type ${bodyType} must be ${expected} bytes, header says ${bodyLen}`, at + 2);
    }
    if ((bodyType === 1) !== (teeType === TEE_TYPE_SGX)) {
      throw new QuoteFormatError("QUOTE_BODY_TYPE", `v5 body type ${bodyType} does not match TEE type 0x${teeType.toString(16)}`, at);
    }
  } else if (teeType === TEE_TYPE_TDX) {
    bodyType = 2;
    bodyLen = TD_REPORT_10_BYTES;
  } else {
    bodyType = 1;
    bodyLen = SGX_REPORT_BYTES;
  }
  const bodyBytes = r.bytes(bodyLen, "report body");
  const signedBytes = input.subarray(0, r.pos);

  const sigLen = r.u32("signature data size");
  const s = r.sub(sigLen, `signature data (declared ${sigLen} bytes)`);
  const length = r.pos;
  const signature = s.bytes(ECDSA_SIG_BYTES, "quote signature");
  const attestationKey = s.bytes(ECDSA_KEY_BYTES, "attestation key");

  let signatureData: QuoteSignatureData;
  if (version === 3) {
    signatureData = parseQeSection(s, signature, attestationKey);
  } else {
    // v4/v5: the QE report travels inside certification data type 6.
    const outer = parseCertificationData(s, "certification data");
    if (outer.type !== CERT_DATA_QE_REPORT) {
      throw new QuoteFormatError("QUOTE_CERT_DATA_TYPE", `quote v${version} certification data must be type 6 (QE report), got ${outer.type}`, outer.offset - 6);
    }
    const inner = new Reader(input, outer.offset, outer.offset + outer.data.length);
    signatureData = parseQeSection(inner, signature, attestationKey);
    expectConsumed(inner, "QE report certification data (type 6)");
  }
  expectConsumed(s, "signature data");

  if (teeType === TEE_TYPE_TDX) {
    return { teeType: "TDX", header, bodyType, body: parseTdReportBody(bodyBytes), signedBytes, signatureData, length };
  }
  return { teeType: "SGX", header, body: parseSgxReportBody(bodyBytes), signedBytes, signatureData, length };
}

/** SGX ATTRIBUTES.FLAGS bit 1: the enclave was launched in debug mode (its memory is readable). */
export function isDebug(attributes: Uint8Array): boolean {
  return (attributes[0]! & 0x02) !== 0;
}

/** TDX TDATTRIBUTES bit 0: the TD is debuggable. */
export function isTdDebug(tdAttributes: Uint8Array): boolean {
  return (tdAttributes[0]! & 0x01) !== 0;
}

/** parseQuote as a result: the quote, or why the bytes are not one (the parser's code kept apart). */
export function readQuote(input: Uint8Array): Result<Quote> {
  try {
    return { ok: true, value: parseQuote(input) };
  } catch (e) {
    return e instanceof EvidenceError ? { ok: false, reason: e.message, code: e.code } : { ok: false, reason: (e as Error).message };
  }
}
