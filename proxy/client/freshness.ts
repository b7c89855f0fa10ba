/**
 * Freshness on a connection the client has just opened (DESIGN.md §4): a quote in a certificate
 * proves nothing about time, and in-handshake evidence can be relayed. So, before the socket is
 * handed to the HTTP client, the connector asks `/.well-known/attestation` on that same socket
 * for evidence bound to a nonce of its own (mode nonce) and to this connection's TLS exporter
 * (mode exporter), and checks it here: the server batches requests under one quote, so the client
 * recomputes its own leaf from its nonce and its own end's exporter and checks that the proof it
 * was given leads from that leaf to the batch root the quote's claims carry.
 *
 * The exchange is a minimal HTTP/1.1 request written by hand, because the socket must come back
 * exactly as clean as it went: the response must carry Content-Length (no chunks, no close) and
 * be consumed to its last byte, and anything else is refused rather than guessed at.
 */
import { createHash, randomBytes } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { equalBytes, isAllZero, toHex } from "../core/bytes.js";
import type { Result } from "../core/result.js";
import { ATTESTATION_PATH, CLAIM_BATCH_ROOT, CLAIM_BATCH_SIZE, EXPORTER_BYTES, EXPORTER_LABEL, NONCE_PARAM, decodeEvidence, type FreshEvidenceMode } from "../core/protocol.js";
import { decodeCbor, type CborValue } from "../evidence/ratls/cbor.js";
import { claimedPubkeyHash } from "../evidence/ratls/read.js";
import { evidenceLeaf, HASH_BYTES, verifyInclusion } from "../evidence/merkle.js";
import { CheckList, type Check, type PlatformFields, type QuoteFields } from "../evidence/verdict.js";
import { judgeFreshQuote, readFreshQuote } from "./quote-judgements.js";
import type { TrustRoot } from "../evidence/dcap/roots.js";
import { parseCertificate } from "../evidence/asn1/x509.js";
import type { FreshnessResult } from "./verdict.js";
import { ExchangeFailure } from "../core/errors.js";

/** Largest evidence response accepted (a quote is at most a few KiB; a TDX quote with its chain, the most). */
export const MAX_EVIDENCE_BYTES = 64 * 1024;
const MAX_HEAD_BYTES = 16 * 1024;
export const NONCE_BYTES = 32;

export type FreshMode = FreshEvidenceMode;

export interface EvidenceResponse {
  status: number;
  body: Buffer;
  /** Retry-After in seconds, when the answer carried a valid one. */
  retryAfter?: number;
}

/**
 * Ask for fresh evidence on `socket` and read exactly one response. Rejects (ExchangeFailure, or
 * the socket's own error) when the response is not something this reader can consume exactly.
 */
export function requestEvidence(socket: TLSSocket, hostHeader: string, mode: FreshMode, nonce: Uint8Array): Promise<EvidenceResponse> {
  const hex = toHex(nonce);
  const body = mode === "exporter" ? JSON.stringify({ [NONCE_PARAM]: hex }) : "";
  const head =
    mode === "exporter"
      ? `POST ${ATTESTATION_PATH} HTTP/1.1\r\nHost: ${hostHeader}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`
      : `GET ${ATTESTATION_PATH}?${NONCE_PARAM}=${hex} HTTP/1.1\r\nHost: ${hostHeader}\r\nAccept: application/json\r\n\r\n`;

  return new Promise<EvidenceResponse>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let status = 0;
    let length = -1;
    let retryAfter: number | undefined;
    let done = false;
    const finish = (err: Error | null, res?: EvidenceResponse): void => {
      if (done) return;
      done = true;
      socket.off("readable", onReadable);
      socket.off("error", onError);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      if (err) reject(err);
      else resolve(res!);
    };
    const onError = (e: Error): void => finish(e);
    const onEnd = (): void => finish(new ExchangeFailure(`the server closed the connection ${status === 0 ? "before answering" : `after ${buf.length} of ${length} body bytes`}`));
    const parseHead = (text: string): string | null => {
      const lines = text.split("\r\n");
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(lines[0] + " ");
      if (!m) return `not an HTTP/1.1 status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`;
      status = Number(m[1]);
      const lengths: string[] = [];
      for (const line of lines.slice(1)) {
        const i = line.indexOf(":");
        if (i <= 0) return `malformed header line ${JSON.stringify(line.slice(0, 80))}`;
        const name = line.slice(0, i).trim().toLowerCase();
        const value = line.slice(i + 1).trim();
        if (name === "content-length") lengths.push(value);
        else if (name === "retry-after" && /^\d{1,6}$/.test(value)) retryAfter = Number(value);
        else if (name === "transfer-encoding") return `Transfer-Encoding ${value}: the evidence must come with a Content-Length`;
        // A refusal (the server's own client attestation, a rate limit) closes the connection: read
        // its body so the verdict can say why. Evidence on a connection about to close is useless.
        else if (name === "connection" && /(^|,)\s*close\s*(,|$)/i.test(value) && status === 200) return "Connection: close: the verified connection would be lost";
      }
      if (lengths.length !== 1 || !/^\d{1,9}$/.test(lengths[0]!)) return `exactly one numeric Content-Length is required, got ${lengths.length ? lengths.join(", ") : "none"}`;
      length = Number(lengths[0]);
      if (length > MAX_EVIDENCE_BYTES) return `Content-Length ${length} is over ${MAX_EVIDENCE_BYTES} bytes`;
      return null;
    };
    // Paused-mode reads: no 'data' listener is ever attached, so the socket goes back to the
    // HTTP client neither flowing nor holding bytes that belong to someone else.
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        if (length < 0) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) {
            if (buf.length > MAX_HEAD_BYTES) finish(new ExchangeFailure(`response head over ${MAX_HEAD_BYTES} bytes`));
            continue;
          }
          const why = parseHead(buf.subarray(0, end).toString("latin1"));
          if (why) return finish(new ExchangeFailure(why));
          buf = buf.subarray(end + 4);
        }
        if (buf.length > length) return finish(new ExchangeFailure(`${buf.length - length} bytes beyond the response's Content-Length ${length}`));
        if (buf.length === length) return finish(null, retryAfter === undefined ? { status, body: buf } : { status, body: buf, retryAfter });
      }
    };
    socket.on("readable", onReadable);
    socket.once("error", onError);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.write(head + body);
  });
}

/** What the fresh evidence must match: this connection and the certificate already appraised. */
export interface FreshnessExpectation {
  mode: FreshMode;
  nonce: Uint8Array;
  /** This connection's exporter as computed on the client's end (mode exporter). */
  exporter: Uint8Array | null;
  peerCertDer: Uint8Array;
  /** SHA-256 of that certificate's DER, as the connector took it (computed from peerCertDer when absent). */
  peerCertSha256?: Uint8Array;
  /** SHA-256 of that certificate's SubjectPublicKeyInfo, as its appraisal read it (read from peerCertDer when absent). */
  spkiSha256?: Uint8Array;
  /** The certificate's appraisal: its quote's identity, platform and root must recur. */
  certQuote: QuoteFields | null;
  certPlatform: PlatformFields | null;
  certDev: boolean;
  /** The roots the certificate was judged under (a policy's anchors, or PEM / DER). */
  trustRoots: readonly TrustRoot[];
  at?: Date;
}

export interface FreshnessOutcome {
  checks: Check[];
  result: FreshnessResult;
}

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(b).digest());

/**
 * The identity fields a fresh quote (a) must share with the certificate's (b): everything a
 * policy may pin, and the debug flag. A TD's RTMR3 included: a guest that extended it after the
 * certificate was made is no longer what the certificate's quote, and so the policy, vouched for.
 */
export function identityDiff(a: QuoteFields, b: QuoteFields): string | null {
  const differ = (k: string, x: unknown, y: unknown): string => `${k} ${String(x)} (fresh) vs ${String(y)} (certificate)`;
  if (a.teeType === "SGX" && b.teeType === "SGX") {
    for (const k of ["mrenclave", "mrsigner", "isvProdId", "isvSvn", "debug"] as const) if (a[k] !== b[k]) return differ(k, a[k], b[k]);
    return null;
  }
  if (a.teeType === "TDX" && b.teeType === "TDX") {
    for (const k of ["mrtd", "mrconfigid", "mrowner", "mrownerconfig", "tdAttributes", "debug"] as const) if (a[k] !== b[k]) return differ(k, a[k], b[k]);
    for (let i = 0; i < Math.max(a.rtmr.length, b.rtmr.length); i++) if (a.rtmr[i] !== b.rtmr[i]) return differ(`rtmr${i}`, a.rtmr[i], b.rtmr[i]);
    return null;
  }
  return `TEE ${a.teeType} vs ${b.teeType}`;
}

/**
 * Judge an evidence response body. Checks run in order and stop at the first failure (the later
 * ones would only restate it); a failure names the check and what was seen.
 */
export async function checkFreshEvidence(res: EvidenceResponse, exp: FreshnessExpectation): Promise<FreshnessOutcome> {
  const c = new CheckList();
  const result = (ok: boolean, detail: string): FreshnessOutcome => ({
    checks: c.checks,
    result: { mode: exp.mode, ok, detail, nonce: toHex(exp.nonce), exporter: exp.exporter ? toHex(exp.exporter) : null },
  });
  const stop = (): FreshnessOutcome => result(false, `${c.failed!.check}: ${c.failed!.reason}`);

  if (res.status !== 200) {
    c.fail("freshness.response", `${ATTESTATION_PATH} answered ${res.status}: ${res.body.toString("utf8").slice(0, 200)}`);
    return stop();
  }
  const doc = decodeEvidence(res.body.toString("utf8"));
  if (!doc.ok) {
    c.fail("freshness.response", doc.reason);
    return stop();
  }
  const { quote, claims: claimsBytes } = doc.value;
  c.pass("freshness.response", `${exp.mode === "exporter" ? "POST" : "GET"} ${ATTESTATION_PATH}: ${res.body.length} bytes on this connection`);

  const peerSha256 = exp.peerCertSha256 ?? sha256(exp.peerCertDer);
  if (!equalBytes(doc.value.certificateSha256, peerSha256)) {
    c.fail("freshness.certificate", `the evidence is for certificate ${toHex(doc.value.certificateSha256)}, this connection's is ${toHex(peerSha256)}`);
    return stop();
  }
  c.pass("freshness.certificate", "the evidence names the certificate this connection was served (its SHA-256)");

  let claims: Map<CborValue, CborValue>;
  try {
    const v = decodeCbor(claimsBytes);
    if (!(v instanceof Map)) throw new Error("not a CBOR map");
    claims = v;
  } catch (e) {
    c.fail("freshness.claims", `the claims do not decode: ${(e as Error).message}`);
    return stop();
  }
  const spkiHash = exp.spkiSha256 ?? sha256(parseCertificate(exp.peerCertDer).spki);
  const claimed = claimedPubkeyHash(claims);
  const claimedHash = claimed.ok ? claimed.value : null;
  const root = claims.get(CLAIM_BATCH_ROOT);
  if (!claimedHash || !equalBytes(claimedHash, spkiHash)) {
    c.fail("freshness.claims", `pubkey-hash ${claimedHash ? toHex(claimedHash) : "(missing or malformed)"} is not SHA-256 of this connection's certificate key ${toHex(spkiHash)}`);
    return stop();
  }
  if (!(root instanceof Uint8Array) || root.length !== HASH_BYTES) {
    c.fail("freshness.claims", `${CLAIM_BATCH_ROOT} is ${root instanceof Uint8Array ? `${root.length} bytes, not ${HASH_BYTES}` : "missing"}: the claims bind no batch of fresh requests`);
    return stop();
  }
  const size = claims.get(CLAIM_BATCH_SIZE);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 1) {
    c.fail("freshness.claims", `${CLAIM_BATCH_SIZE} is ${typeof size === "number" ? size : "missing"}: the claims must say how many requests the batch holds`);
    return stop();
  }
  c.pass("freshness.claims", `pubkey-hash of this certificate's key, a ${CLAIM_BATCH_ROOT} and a ${CLAIM_BATCH_SIZE} (${size})`);

  // The leaf is recomputed from what only this client (and, for the exporter, this connection's
  // other end) knows: evidence made for any other request cannot reach the root with it.
  const exporterValue = exp.mode === "exporter" ? exp.exporter : null;
  if (exp.mode === "exporter" && !exporterValue) {
    c.fail("freshness.proof", "mode exporter, but this connection's exporter is unknown: nothing to bind the evidence to");
    return stop();
  }
  const leaf = evidenceLeaf(exp.nonce, exporterValue);
  const proof = doc.value.proof;
  const included: Result<true> = proof.size === size ? verifyInclusion(leaf, proof, root) : { ok: false, reason: `the proof is for a batch of ${proof.size}, the claims say ${size}` };
  const bound = `this client's nonce${exporterValue ? " and this connection's TLS exporter" : ""}`;
  if (!included.ok) {
    c.fail("freshness.proof", `the leaf of ${bound} is not in the quoted batch (replayed or relayed evidence, or a forged proof): ${included.reason}`);
    return stop();
  }
  c.pass("freshness.proof", `the leaf of ${bound} is leaf ${proof.index} of ${size} under ${CLAIM_BATCH_ROOT} ${toHex(root)}`);

  const { key: quoteKey, parsed } = readFreshQuote(quote);
  if (!parsed.ok) {
    c.fail("freshness.quote", `the fresh quote does not parse: ${parsed.reason}`);
    return stop();
  }
  const rd = parsed.value.body.reportData;
  const want = sha256(claimsBytes);
  if (!equalBytes(rd.subarray(0, 32), want) || !isAllZero(rd.subarray(32))) {
    c.fail("freshness.report-data", `the fresh quote's report data ${toHex(rd)} is not SHA-256(claims) ${toHex(want)} ‖ 0³²`);
    return stop();
  }
  c.pass("freshness.report-data", "fresh quote report data = SHA-256(claims) ‖ 0³²");

  const v = await judgeFreshQuote(quoteKey, parsed, exp.trustRoots, exp.at);
  if (!v.ok || !v.quote) {
    c.fail("freshness.quote", `the fresh quote fails ${v.failed?.check}: ${v.failed?.reason}`);
    return stop();
  }
  const diff = exp.certQuote === null ? "the certificate's quote has no fields to compare" : identityDiff(v.quote, exp.certQuote);
  const platformDiff = JSON.stringify(v.platform) === JSON.stringify(exp.certPlatform) ? null : "the fresh quote comes from another platform (PCK certificate fields differ)";
  const rootDiff = v.dev === exp.certDev ? null : `the fresh quote is anchored at ${v.dev ? "a non-Intel" : "Intel's"} root, the certificate's is not`;
  const why = diff ?? platformDiff ?? rootDiff;
  if (why) {
    c.fail("freshness.quote", `the fresh quote verifies but is not the certificate's enclave: ${why}`);
    return stop();
  }
  c.pass("freshness.quote", `the fresh quote verifies and carries the certificate quote's identity (${v.quote.teeType === "SGX" ? `mrenclave ${v.quote.mrenclave}` : `TD mrtd ${v.quote.mrtd}`})`);
  return result(true, exp.mode === "exporter" ? "evidence bound to this TLS connection's exporter and a fresh nonce" : "evidence bound to a fresh nonce (not to this connection: relayable)");
}

/** A fresh nonce and, for mode exporter, the exporter value of `socket` under it. */
export function freshInputs(socket: TLSSocket, mode: FreshMode): { nonce: Uint8Array; exporter: Uint8Array | null } {
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const exporter = mode === "exporter" ? new Uint8Array(socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, Buffer.from(nonce))) : null;
  return { nonce, exporter };
}

/** A busy server (its share or cap of fresh quotes spent) is not a failed attestation (DESIGN.md §9). */
export const BUSY_STATUSES: ReadonlySet<number> = new Set([429, 503]);
/** Without a Retry-After, how long a busy answer is waited out; a little jitter keeps waiters apart. */
const BUSY_WAIT_MS = 1000;
const BUSY_JITTER_MS = 250;

/** The wait before asking again after a busy answer. */
export function busyWaitMs(res: EvidenceResponse, jitter = Math.random()): number {
  return (res.retryAfter ?? BUSY_WAIT_MS / 1000) * 1000 + Math.floor(jitter * BUSY_JITTER_MS);
}

/**
 * Ask and judge, on one socket; a broken exchange is a failed `freshness.response`. A busy answer
 * (429 / 503) is asked again on the same connection after its Retry-After, with a fresh nonce,
 * for as long as `deadline` (epoch ms) allows; past it, the busy answer is the verdict.
 */
export async function freshness(
  socket: TLSSocket,
  hostHeader: string,
  mode: FreshMode,
  exp: Omit<FreshnessExpectation, "mode" | "nonce" | "exporter">,
  deadline = Number.POSITIVE_INFINITY,
): Promise<FreshnessOutcome> {
  for (;;) {
    const { nonce, exporter } = freshInputs(socket, mode);
    let res: EvidenceResponse;
    try {
      res = await requestEvidence(socket, hostHeader, mode, nonce);
    } catch (e) {
      if (!(e instanceof ExchangeFailure)) throw e;
      const c = new CheckList();
      c.fail("freshness.response", e.message);
      return { checks: c.checks, result: { mode, ok: false, detail: `freshness.response: ${e.message}`, nonce: toHex(nonce), exporter: exporter ? toHex(exporter) : null } };
    }
    if (BUSY_STATUSES.has(res.status) && !socket.destroyed) {
      const wait = busyWaitMs(res);
      if (Date.now() + wait < deadline) {
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
    }
    const out = await checkFreshEvidence(res, { ...exp, mode, nonce, exporter });
    if (BUSY_STATUSES.has(res.status)) out.result.busy = true;
    return out;
  }
}

export { ExchangeFailure };
