/**
 * What both ends of the wire must agree on (DESIGN.md §4, §6): where fresh evidence is asked
 * for, the TLS exporter label it is bound with, the claim keys, the evidence response's JSON
 * fields, the freshness modes a policy names, and the headers that carry the listener's verdict
 * on a client. The server and the client import this file and never each other.
 */
import type { Result } from "./result.js";

/**
 * Fresh evidence: GET ?nonce=HEX (leaf over the nonce) or POST {"nonce": HEX} (leaf over the nonce
 * and this connection's tls-exporter). Requests are batched: one quote's claims carry the Merkle
 * root of every leaf of its batch, and each answer carries its own inclusion proof (docs/protocol.md).
 */
export const ATTESTATION_PATH = "/.well-known/attestation";
/** The query parameter (GET) and JSON member (POST) that carry the client's nonce, hex. */
export const NONCE_PARAM = "nonce";
/** RFC 8446 §7.5 / RFC 5705: exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, nonce). */
export const EXPORTER_LABEL = "EXPORTER-attestable-mcp";
export const EXPORTER_BYTES = 32;

/** The claims map's keys (CBOR text strings). */
export const CLAIM_PUBKEY_HASH = "pubkey-hash";
export const CLAIM_NONCE = "nonce";
export const CLAIM_TLS_EXPORTER = "tls-exporter";
/** The claim that carries the batch's Merkle root (32 bytes, RFC 6962 hashing). */
export const CLAIM_BATCH_ROOT = "batch-root";
/** The claim that carries how many leaves that tree has (unsigned integer): a proof must say the same. */
export const CLAIM_BATCH_SIZE = "batch-size";
/**
 * The most leaves one quote covers. The client refuses a proof for a larger tree, so a path is
 * at most log2(BATCH_MAX) = 10 hashes; the server starts a further quote for the rest.
 */
export const BATCH_MAX = 1024;

/**
 * How a client establishes that evidence is fresh: bound to this connection's TLS exporter, to a
 * nonce of its own only, or not at all (the certificate's own quote, as old as the certificate).
 */
export const FRESHNESS_MODES = ["exporter", "nonce", "certificate"] as const;
export type FreshnessMode = (typeof FRESHNESS_MODES)[number];
/** The modes that ask the server for fresh evidence. */
export type FreshEvidenceMode = Exclude<FreshnessMode, "certificate">;

/** Where one request's leaf sits in its batch's tree, and the sibling hashes from it up to the root. */
export interface InclusionProof {
  index: number;
  size: number;
  /** Sibling hashes, the leaf's first (RFC 6962 audit path order). */
  path: Uint8Array[];
}

/**
 * The evidence response body: `quote` and `claims` base64, `certificateSha256` and `proof` with
 * hex hashes, `dev` informative only.
 */
export interface EvidenceDocument {
  quote: Uint8Array;
  claims: Uint8Array;
  /**
   * SHA-256 of the DER of the certificate the connection was served. A name, not the certificate:
   * the client holds that certificate from its own handshake, and the quote binds its key through
   * the claims, not through this field.
   */
  certificateSha256: Uint8Array;
  proof: InclusionProof;
  dev: boolean;
}

export function encodeEvidence(e: EvidenceDocument): string {
  return evidenceHead(e) + evidenceTail(e.proof, e.dev);
}

/**
 * The body up to the proof: the same for every answer of one batch on one certificate, so a
 * server encodes it once per batch. evidenceHead(e) + evidenceTail(e.proof, e.dev) is the JSON
 * of the whole document, members in the order above.
 */
export function evidenceHead(e: Pick<EvidenceDocument, "quote" | "claims" | "certificateSha256">): string {
  const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return `{"quote":"${view(e.quote).toString("base64")}","claims":"${view(e.claims).toString("base64")}","certificateSha256":"${view(e.certificateSha256).toString("hex")}","proof":`;
}

/** The rest of the body after evidenceHead: this request's own proof, and `dev`. */
export function evidenceTail(proof: InclusionProof, dev: boolean): string {
  const path = proof.path.map((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString("hex"));
  return `${JSON.stringify({ index: proof.index, size: proof.size, path })},"dev":${dev === true}}`;
}

/** A SHA-256 as 64 lowercase hex digits. */
function hexHash(v: unknown): Uint8Array | null {
  return typeof v === "string" && /^[0-9a-f]{64}$/.test(v) ? new Uint8Array(Buffer.from(v, "hex")) : null;
}

/** The proof read strictly: integer index and size, and a path of 32-byte hex hashes (at most 64 of them). */
function proofOf(v: unknown): InclusionProof | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return null;
  const { index, size, path } = v as Record<string, unknown>;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || !Array.isArray(path) || path.length > 64) return null;
  const hashes: Uint8Array[] = [];
  for (const h of path) {
    const hash = hexHash(h);
    if (!hash) return null;
    hashes.push(hash);
  }
  return { index: index as number, size: size as number, path: hashes };
}

/**
 * Canonical padded base64 only: the text must be exactly what encoding its bytes gives back.
 * Node's decoder skips what is not base64, so the check is the round trip, which also costs half
 * of a character-class scan over a quote's ~7 KB.
 */
function base64(v: unknown): Uint8Array | null {
  if (typeof v !== "string") return null;
  const bytes = Buffer.from(v, "base64");
  return bytes.toString("base64") === v ? new Uint8Array(bytes) : null;
}

/** The body read strictly: a JSON object with base64 quote and claims, the certificate's SHA-256 and a proof. */
export function decodeEvidence(text: string): Result<EvidenceDocument> {
  let doc: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
    doc = parsed as Record<string, unknown>;
  } catch (e) {
    return { ok: false, reason: `the body is not a JSON object (${(e as Error).message})` };
  }
  const quote = base64(doc.quote);
  const claims = base64(doc.claims);
  const certificateSha256 = hexHash(doc.certificateSha256);
  if (!quote || !claims || !certificateSha256) return { ok: false, reason: "the body needs quote (base64), claims (base64) and certificateSha256 (64 hex digits)" };
  const proof = proofOf(doc.proof);
  if (!proof) return { ok: false, reason: "the body needs proof {index, size, path: [64 hex digits, …]} (evidence from a proxy without batching?)" };
  return { ok: true, value: { quote, claims, certificateSha256, proof, dev: doc.dev === true } };
}

/**
 * The listener's verdict on a mutually attested client, as the upstream receives it. The
 * forwarder strips every client-sent header with this prefix before adding its own.
 */
export const ATTESTED_CLIENT_HEADER_PREFIX = "X-Attested-Client-";
export const VERDICT_HEADER = `${ATTESTED_CLIENT_HEADER_PREFIX}Verdict`;
export const MRENCLAVE_HEADER = `${ATTESTED_CLIENT_HEADER_PREFIX}Mrenclave`;
export const MRSIGNER_HEADER = `${ATTESTED_CLIENT_HEADER_PREFIX}Mrsigner`;
/** A TDX client: its MRTD and RTMR0…RTMR3 (`X-Attested-Client-Rtmr0` …). */
export const MRTD_HEADER = `${ATTESTED_CLIENT_HEADER_PREFIX}Mrtd`;
export const RTMR_HEADER_PREFIX = `${ATTESTED_CLIENT_HEADER_PREFIX}Rtmr`;
/** The caller's authenticated principal as the proxy tells the upstream (caller authentication, §10). */
export const AUTHENTICATED_SUBJECT_HEADER = "X-Authenticated-Subject";

/**
 * MCP 2026-07-28 (the stateless revision) on Streamable HTTP: the revisions the proxy knows, the
 * request headers that mirror the body, the per-request `_meta` keys and the protocol error
 * codes. Revision names are ISO dates, so a string comparison orders them.
 */
export const FIRST_MODERN_REVISION = "2026-07-28";
/** Modern revisions the proxy validates and relays; a request naming another one gets -32022. */
export const MODERN_REVISIONS: readonly string[] = [FIRST_MODERN_REVISION];
export const MCP_PROTOCOL_VERSION_HEADER = "mcp-protocol-version";
export const MCP_METHOD_HEADER = "mcp-method";
export const MCP_NAME_HEADER = "mcp-name";
/** `Mcp-Param-{Name}` for a tool argument annotated `x-mcp-header: {Name}`. */
export const MCP_PARAM_HEADER_PREFIX = "mcp-param-";
export const META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion";
export const META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo";
export const META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities";
export const META_LOG_LEVEL = "io.modelcontextprotocol/logLevel";
export const META_SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId";
/** HeaderMismatch: headers and body disagree, or a required header is missing or malformed. */
export const HEADER_MISMATCH = -32020;
/** UnsupportedProtocolVersion, with `data: {supported, requested}`. */
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;
