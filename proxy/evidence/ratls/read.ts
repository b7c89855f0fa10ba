/**
 * RA-TLS certificates: find the evidence extensions and check what binds them to the key.
 *
 * Extensions recognised (DESIGN.md §4; test/fixtures/vectors/README.md traps 1–2):
 * - TCG DICE tagged evidence, OID 2.23.133.5.4.9: CBOR tag 60000 over [quote bstr, claims bstr];
 *   claims is a CBOR map whose "pubkey-hash" is a bstr holding CBOR [1 (sha-256), SHA-256(SPKI)];
 *   the quote's report data is SHA-256(claims bytes) ‖ 0³².
 * - Gramine's legacy extension, whose OID is written as the bytes 06 09 2A 86 48 86 F8 4D 8A 39 06
 *   (matched by those raw bytes): a raw quote with report data SHA-256(SPKI DER) ‖ 0³².
 * - The Intel SGX SDK's copy of the claims-bound quote under OID 1.2.840.113741.1.13.1.
 * Pure: this module reads and compares bytes; quote verification is ratls/verify.ts.
 */
import { createHash } from "node:crypto";
import { equalBytes, isAllZero, toHex } from "../../core/bytes.js";
import { CLAIM_PUBKEY_HASH } from "../../core/protocol.js";
import type { Result } from "../../core/result.js";
import { decodeCbor, type CborValue } from "./cbor.js";
import { RaTlsError, type ErrorCode } from "../../core/errors.js";
import { readQuote, type Quote } from "../dcap/quote.js";
import { OID, parseCertificate, type Certificate } from "../asn1/x509.js";

export const OID_TCG_TAGGED_EVIDENCE = "2.23.133.5.4.9";
export const OID_INTEL_SDK_QUOTE = "1.2.840.113741.1.13.1";
export const CBOR_TAG_TAGGED_EVIDENCE = 60000;
/** The content of Gramine's legacy extension OID, exactly as Gramine writes it. */
export const GRAMINE_LEGACY_OID_CONTENT = Uint8Array.of(0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x8a, 0x39, 0x06);
/** IANA COSE hash algorithm id used in "pubkey-hash": 1 = sha-256. */
export const PUBKEY_HASH_SHA256 = 1;

export type RaTlsExtensionKind = "tcg-tagged-evidence" | "gramine-legacy-quote" | "intel-sdk-quote";

export interface RaTlsEvidence {
  cert: Certificate;
  /** SHA-256 of the certificate's SubjectPublicKeyInfo DER. */
  spkiSha256: Uint8Array;
  tagged: null | { quote: Uint8Array; claimsBytes: Uint8Array; claims: Map<CborValue, CborValue> };
  legacy: null | { quote: Uint8Array };
  sdk: null | { quote: Uint8Array };
  extensions: { oid: string; critical: boolean; kind: RaTlsExtensionKind | "x509" | "unknown" }[];
}

function isLegacyOid(oidBytes: Uint8Array): boolean {
  // oidBytes is the whole OBJECT IDENTIFIER element: 06 0B followed by Gramine's 11 bytes.
  return oidBytes.length === 13 && oidBytes[0] === 0x06 && oidBytes[1] === 0x0b && equalBytes(oidBytes.subarray(2), GRAMINE_LEGACY_OID_CONTENT);
}

const KNOWN_X509 = new Set<string>([OID.basicConstraints, OID.keyUsage, OID.subjectKeyId, OID.authorityKeyId]);

function taggedEvidence(value: Uint8Array): NonNullable<RaTlsEvidence["tagged"]> {
  const v = decodeCbor(value);
  if (v === null || typeof v !== "object" || !("tag" in v) || v.tag !== CBOR_TAG_TAGGED_EVIDENCE) {
    throw new RaTlsError("RATLS_TAGGED_EVIDENCE", `TCG tagged evidence must be CBOR tag ${CBOR_TAG_TAGGED_EVIDENCE}`);
  }
  const arr = v.value;
  if (!Array.isArray(arr) || arr.length !== 2 || !(arr[0] instanceof Uint8Array) || !(arr[1] instanceof Uint8Array)) {
    throw new RaTlsError("RATLS_TAGGED_EVIDENCE", "TCG tagged evidence must be an array [quote bstr, claims bstr]");
  }
  const claims = decodeCbor(arr[1]);
  if (!(claims instanceof Map)) throw new RaTlsError("RATLS_CLAIMS", "claims must be a CBOR map");
  return { quote: arr[0], claimsBytes: arr[1], claims };
}

/**
 * Find and decode the evidence extensions. Throws RaTlsError / CborError on malformed evidence
 * extensions, on an unknown critical extension, and when no evidence extension is present.
 */
export function readRaTls(cert: Certificate): RaTlsEvidence {
  const out: RaTlsEvidence = {
    cert,
    spkiSha256: new Uint8Array(createHash("sha256").update(cert.spki).digest()),
    tagged: null,
    legacy: null,
    sdk: null,
    extensions: [],
  };
  for (const e of cert.extensions) {
    let kind: RaTlsEvidence["extensions"][number]["kind"] = KNOWN_X509.has(e.oid) ? "x509" : "unknown";
    if (e.oid === OID_TCG_TAGGED_EVIDENCE) {
      kind = "tcg-tagged-evidence";
      out.tagged = taggedEvidence(e.value);
    } else if (isLegacyOid(e.oidBytes)) {
      kind = "gramine-legacy-quote";
      out.legacy = { quote: e.value };
    } else if (e.oid === OID_INTEL_SDK_QUOTE) {
      // In a PCK certificate this OID is Intel's SGX extension; in an RA-TLS certificate the SDK
      // stores the claims-bound quote there. Only a value that parses as a quote counts.
      kind = "intel-sdk-quote";
      out.sdk = { quote: e.value };
    }
    if (e.critical && kind === "unknown") {
      throw new RaTlsError("RATLS_CRITICAL_EXTENSION", `unknown critical extension ${e.oid} in the certificate`);
    }
    out.extensions.push({ oid: kind === "gramine-legacy-quote" ? "1.2.840.113741.1337.6 (Gramine legacy encoding)" : e.oid, critical: e.critical, kind });
  }
  if (!out.tagged && !out.legacy) {
    throw new RaTlsError("RATLS_NO_EVIDENCE", "the certificate carries no RA-TLS evidence (neither the TCG tagged-evidence nor Gramine's legacy extension)");
  }
  return out;
}

/** Each quote the evidence carries, parsed once, or why it does not parse; null: not carried. */
export interface RaTlsQuotes {
  tagged: Result<Quote> | null;
  legacy: Result<Quote> | null;
  sdk: Result<Quote> | null;
}

export function readRaTlsQuotes(ev: RaTlsEvidence): RaTlsQuotes {
  return {
    tagged: ev.tagged ? readQuote(ev.tagged.quote) : null,
    legacy: ev.legacy ? readQuote(ev.legacy.quote) : null,
    sdk: ev.sdk ? readQuote(ev.sdk.quote) : null,
  };
}

/** An RA-TLS certificate parsed once: the certificate, its evidence extensions and their quotes. */
export interface ParsedRaTls {
  cert: Certificate;
  evidence: RaTlsEvidence;
  quotes: RaTlsQuotes;
}

/** Parse the certificate, read its evidence and parse its quotes; why it cannot be read otherwise. */
export function readRaTlsCertificate(der: Uint8Array): Result<ParsedRaTls> {
  try {
    const cert = parseCertificate(der);
    const evidence = readRaTls(cert);
    return { ok: true, value: { cert, evidence, quotes: readRaTlsQuotes(evidence) } };
  } catch (e) {
    const code = (e as { code?: ErrorCode }).code;
    return code === undefined ? { ok: false, reason: (e as Error).message } : { ok: false, reason: (e as Error).message, code };
  }
}

/**
 * The hash the "pubkey-hash" claim names: a byte string holding CBOR [1 (sha-256), 32-byte
 * hash]. The one reading of that claim, for the certificate's binding and for fresh evidence.
 */
export function claimedPubkeyHash(claims: Map<CborValue, CborValue>): Result<Uint8Array> {
  const ph = claims.get(CLAIM_PUBKEY_HASH);
  if (ph === undefined) return { ok: false, reason: 'the "pubkey-hash" claim is missing' };
  if (!(ph instanceof Uint8Array)) return { ok: false, reason: '"pubkey-hash" must be a byte string holding CBOR [1, hash]' };
  let inner: CborValue;
  try {
    inner = decodeCbor(ph);
  } catch (e) {
    return { ok: false, reason: `"pubkey-hash" does not decode: ${(e as Error).message}` };
  }
  if (Array.isArray(inner) && inner.length === 2 && inner[0] === PUBKEY_HASH_SHA256 && inner[1] instanceof Uint8Array && inner[1].length === 32) return { ok: true, value: inner[1] };
  return { ok: false, reason: '"pubkey-hash" must hold CBOR [1 (sha-256), 32-byte hash]' };
}

export interface BindingCheck {
  check: "binding.pubkey-hash" | "binding.report-data" | "binding.legacy-report-data" | "binding.sdk-report-data" | "binding.measurements";
  ok: boolean;
  detail: string;
}

/** The 64-byte report data of a parsed quote, whatever its TEE. */
export function reportDataOf(q: Quote): Uint8Array {
  return q.body.reportData;
}

/** report_data must be exactly SHA-256(x) ‖ 0³². */
function reportDataIs(q: Quote, digest: Uint8Array): boolean {
  const rd = reportDataOf(q);
  return equalBytes(rd.subarray(0, 32), digest) && isAllZero(rd.subarray(32));
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

/** Same TEE, same measurements and identity fields; report data may differ (it binds different things). */
function sameMeasurements(a: Quote, b: Quote): string | null {
  if (a.teeType !== b.teeType) return `${a.teeType} vs ${b.teeType}`;
  const fields =
    a.teeType === "SGX" && b.teeType === "SGX"
      ? ([
          ["mrenclave", a.body.mrEnclave, b.body.mrEnclave],
          ["mrsigner", a.body.mrSigner, b.body.mrSigner],
          ["attributes", a.body.attributes, b.body.attributes],
          [
            "isvProdId/isvSvn",
            Uint8Array.of(a.body.isvProdId >> 8, a.body.isvProdId, a.body.isvSvn >> 8, a.body.isvSvn),
            Uint8Array.of(b.body.isvProdId >> 8, b.body.isvProdId, b.body.isvSvn >> 8, b.body.isvSvn),
          ],
          ["configId", a.body.configId, b.body.configId],
        ] as const)
      : a.teeType === "TDX" && b.teeType === "TDX"
        ? ([
            ["mrtd", a.body.mrTd, b.body.mrTd],
            ["rtmr", Buffer.concat(a.body.rtmr), Buffer.concat(b.body.rtmr)],
            ["tdAttributes", a.body.tdAttributes, b.body.tdAttributes],
          ] as const)
        : [];
  for (const [name, x, y] of fields) if (!equalBytes(x, y)) return `${name} ${toHex(x)} vs ${toHex(y)}`;
  return null;
}

/**
 * Key binding: the pubkey-hash claim names this certificate's key, each quote's report data
 * binds what its extension says it binds, and two quotes describe the same enclave. `quotes` are
 * the evidence's quotes as readRaTlsQuotes parsed them (parsed here when not given).
 */
export function checkBinding(ev: RaTlsEvidence, quotes: RaTlsQuotes = readRaTlsQuotes(ev)): BindingCheck[] {
  const checks: BindingCheck[] = [];
  const spki = toHex(ev.spkiSha256);
  const parsed: { name: string; q: Quote }[] = [];
  const use = (name: string, r: Result<Quote> | null): Quote | null => {
    if (!r?.ok) return null;
    parsed.push({ name, q: r.value });
    return r.value;
  };

  if (ev.tagged) {
    const claimed = claimedPubkeyHash(ev.tagged.claims);
    checks.push(
      !claimed.ok
        ? { check: "binding.pubkey-hash", ok: false, detail: claimed.reason }
        : equalBytes(claimed.value, ev.spkiSha256)
          ? { check: "binding.pubkey-hash", ok: true, detail: `pubkey-hash claim = SHA-256(SPKI) ${spki}` }
          : { check: "binding.pubkey-hash", ok: false, detail: `pubkey-hash claim ${toHex(claimed.value)} is not SHA-256(SPKI) ${spki}` },
    );
    const q = use("tagged", quotes.tagged);
    const want = sha256(ev.tagged.claimsBytes);
    checks.push(
      q === null
        ? { check: "binding.report-data", ok: false, detail: "the tagged-evidence quote does not parse" }
        : reportDataIs(q, want)
          ? { check: "binding.report-data", ok: true, detail: "tagged-evidence quote report data = SHA-256(claims) ‖ 0³²" }
          : { check: "binding.report-data", ok: false, detail: `tagged-evidence quote report data ${toHex(reportDataOf(q))} is not SHA-256(claims) ${toHex(want)} ‖ 0³²` },
    );
    if (ev.sdk) {
      const s = use("sdk", quotes.sdk);
      checks.push(
        s === null
          ? { check: "binding.sdk-report-data", ok: false, detail: `the quote under ${OID_INTEL_SDK_QUOTE} does not parse` }
          : reportDataIs(s, want)
            ? { check: "binding.sdk-report-data", ok: true, detail: `quote under ${OID_INTEL_SDK_QUOTE} report data = SHA-256(claims) ‖ 0³²` }
            : { check: "binding.sdk-report-data", ok: false, detail: `quote under ${OID_INTEL_SDK_QUOTE} report data ${toHex(reportDataOf(s))} is not SHA-256(claims) ‖ 0³²` },
      );
    }
  }
  if (ev.legacy) {
    const q = use("legacy", quotes.legacy);
    checks.push(
      q === null
        ? { check: "binding.legacy-report-data", ok: false, detail: "the legacy-extension quote does not parse" }
        : reportDataIs(q, ev.spkiSha256)
          ? { check: "binding.legacy-report-data", ok: true, detail: "legacy quote report data = SHA-256(SPKI) ‖ 0³²" }
          : { check: "binding.legacy-report-data", ok: false, detail: `legacy quote report data ${toHex(reportDataOf(q))} is not SHA-256(SPKI) ${spki} ‖ 0³²` },
    );
  }
  if (parsed.length > 1) {
    const [first, ...rest] = parsed;
    const diffs = rest.map((r) => [r.name, sameMeasurements(first!.q, r.q)] as const).filter(([, d]) => d !== null);
    checks.push(
      diffs.length
        ? { check: "binding.measurements", ok: false, detail: diffs.map(([n, d]) => `${first!.name} and ${n} quotes differ: ${d}`).join("; ") }
        : { check: "binding.measurements", ok: true, detail: `${parsed.map((p) => p.name).join(" and ")} quotes carry the same measurements` },
    );
  }
  return checks;
}

/** Claims for display: byte strings that hold CBOR are decoded, others shown as hex, text kept. */
export function claimsForDisplay(claims: Map<CborValue, CborValue>): Record<string, unknown> {
  const show = (v: CborValue): unknown => {
    if (v instanceof Uint8Array) return toHex(v);
    if (typeof v === "bigint") return v.toString();
    if (Array.isArray(v)) return v.map(show);
    if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), show(x)]));
    if (v !== null && typeof v === "object" && "tag" in v) return { tag: v.tag, value: show(v.value) };
    return v;
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of claims) {
    const key = typeof k === "string" ? k : String(show(k));
    if (v instanceof Uint8Array) {
      try {
        out[key] = show(decodeCbor(v));
        continue;
      } catch {
        // not CBOR inside: show the bytes
      }
    }
    out[key] = show(v);
  }
  return out;
}
