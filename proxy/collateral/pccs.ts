/**
 * DCAP collateral from a PCCS or Intel's PCS (API v4), checked, cached on disk, served stale
 * when the service fails.
 *
 * What is fetched, for one key (TEE, FMSPC, PCK CA) — base is the service URL, normalised to end
 * in "/" without the "sgx/certification/v4/" tail:
 *   TCB info      {base}sgx/certification/v4/tcb?fmspc=HEX     (TDX: {base}tdx/certification/v4/tcb)
 *                 header TCB-Info-Issuer-Chain (API v3 and some servers: SGX-TCB-Info-Issuer-Chain)
 *   QE identity   {base}sgx/certification/v4/qe/identity       (TDX: {base}tdx/certification/v4/qe/identity)
 *                 header SGX-Enclave-Identity-Issuer-Chain
 *   PCK CRL       {base}sgx/certification/v4/pckcrl?ca=processor|platform&encoding=der (for TDX too)
 *                 header SGX-PCK-CRL-Issuer-Chain
 *   root CA CRL   `rootCaCrlUrl` when given; else, for Intel's PCS (a host under
 *                 trustedservices.intel.com, which has no root CRL endpoint), the CRL distribution
 *                 point of Intel's root certificate (INTEL_ROOT_CA_CRL_URL, DER); for any other
 *                 service, a PCCS: {base}sgx/certification/v4/rootcacrl (Intel's PCCS answers hex
 *                 text; DER and PEM are accepted too).
 * Issuer chains arrive percent-encoded (PEM) in the headers. TCB info and QE identity bodies are
 * `{"tcbInfo": {...}, "signature": "hex"}` / `{"enclaveIdentity": {...}, "signature": "hex"}`; the
 * signed text is the inner object exactly as served (never re-serialised).
 *
 * Nothing is returned or cached unless it verifies: TCB info, QE identity and root CA CRL
 * (`checkCollateral`) and the PCK CRL (signed by its issuer chain's CA) under one trust anchor
 * (Intel's root, or a root passed in `trustRoots`, such as the dev root); TCB info for the asked
 * TEE and FMSPC; QE identity QE (SGX) or TD_QE (TDX); PCK CRL of the asked CA. The verifier
 * checks all of it again against the PCK chain of the quote.
 *
 * Caching: per key, in memory and (unless `cacheDir` is null) in `cacheDir/<tee>-<fmspc>-<ca>.json`
 * (directory 0700, files 0600, written to a temporary name and renamed). A copy read from disk is
 * verified again before use; one that does not verify is ignored. A copy is fresh until the
 * earliest nextUpdate of its four pieces; fresh copies are served without a request. Past that,
 * the next `get` fetches again; if that fails (unreachable, timeout, HTTP error, malformed body,
 * missing header, signatures that do not verify) the previous good copy is served as
 * "stale-cache" with the reason, and the service is not asked again for `retryAfterMs` (the same
 * holds for the error when there is no copy at all). Concurrent `get`s for one key share a fetch.
 *
 * Errors (stable codes):
 *   InputError    PCCS_URL_INVALID, PCCS_URL_INSECURE (plain http to a non-loopback host),
 *                 PCCS_OPTIONS_INVALID, COLLATERAL_KEY_INVALID,
 *                 PCK_CHAIN_MISSING, PCK_CHAIN_UNTRUSTED, PCK_CA_UNKNOWN (collateralKeyOf)
 *   CollateralError COLLATERAL_UNAVAILABLE (get: no good copy; `cause` holds the failure below)
 *   failures, named in `error` / the message as "CODE: detail": PCCS_UNREACHABLE, PCCS_TIMEOUT,
 *                 PCCS_HTTP_STATUS, PCCS_RESPONSE_TOO_LARGE, PCCS_HEADER_MISSING,
 *                 PCCS_RESPONSE_INVALID, COLLATERAL_MISMATCH, COLLATERAL_SIGNATURE, and the
 *                 COLLATERAL_* format codes of prepareCollateral.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { equalBytes, fromHex, toHex } from "../core/bytes.js";
import { findLeaf, validatePath } from "../evidence/dcap/chain.js";
import { checkCollateral, prepareCollateral, splitSignedBody, type Collateral } from "../evidence/dcap/collateral.js";
import { partsFromDcapQvl, type DcapQvlCollateral } from "../evidence/dcap/collateral-files.js";
import { checkPckChain, pckCertificates } from "../evidence/dcap/quote-checks.js";
import { CollateralError, EvidenceError, InputError } from "../core/errors.js";
import { parsePckExtension } from "../evidence/asn1/sgx-extension.js";
import { pemBlocks } from "../evidence/asn1/pem.js";
import { parseQuote } from "../evidence/dcap/quote.js";
import { trustAnchors, type TrustAnchor } from "../evidence/dcap/roots.js";
import { verifySignedBy } from "../evidence/dcap/signatures.js";

export const INTEL_PCS_URL = "https://api.trustedservices.intel.com/";
/** The CRL distribution point named in Intel's SGX Root CA certificate. */
export const INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
export const PCCS_MAX_BODY_BYTES = 1024 * 1024;
export const PCCS_DEFAULT_TIMEOUT_MS = 10_000;
export const PCCS_DEFAULT_RETRY_AFTER_MS = 30_000;
const CACHE_FORMAT = "attestable-mcp/pccs-collateral/1";

export interface PccsOptions {
  /** Service base, e.g. INTEL_PCS_URL or "https://pccs.local:8081/"; a trailing "sgx/certification/v4/" is accepted. */
  url: string;
  /** Cache directory ("~" expanded); null: memory only. */
  cacheDir: string | null;
  /** Roots trusted besides Intel's (PEM text or DER), e.g. the dev root. */
  trustRoots?: (string | Uint8Array)[];
  /** Where the root CA CRL comes from (see the module comment for the default). */
  rootCaCrlUrl?: string;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
  /** Per request, headers and body; default 10 s. */
  timeoutMs?: number;
  /** After a failed fetch, serve the stale copy (or the error) without asking again for this long; default 30 s. */
  retryAfterMs?: number;
  /** Clock for freshness and certificate validity; default the system clock. */
  now?: () => Date;
  /** Problems that do not fail a `get` (cache files unreadable, unwritable, or not verifying). Default: stderr. */
  warn?: (message: string) => void;
}

export interface CollateralKey {
  tee: "SGX" | "TDX";
  /** 12 hex digits (6 bytes); normalised to lower case. */
  fmspc: string;
  /** The CA that issued the PCK certificate. */
  ca: "processor" | "platform";
}

export interface FetchedCollateral {
  /** What verifyQuote takes as `collateral`. */
  collateral: DcapQvlCollateral;
  source: "network" | "cache" | "stale-cache";
  /** When this copy came from the service (ISO). */
  fetchedAt: string;
  /** Earliest nextUpdate over TCB info, QE identity, PCK CRL and root CA CRL (ISO). */
  nextUpdate: string;
  /** Why a stale copy is served (the failed fetch, "CODE: detail"); null otherwise. */
  error: string | null;
}

export interface CollateralUrls {
  tcbInfo: string;
  qeIdentity: string;
  pckCrl: string;
  rootCaCrl: string;
}

// ---- URLs ----------------------------------------------------------------------------------

function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === "localhost" || h === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Parse `url` and require https, or http to a loopback host. */
function checkedUrl(url: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError("PCCS_URL_INVALID", `${what} ${JSON.stringify(url)} is not a URL`);
  }
  if (u.username || u.password) throw new InputError("PCCS_URL_INVALID", `${what} ${u.origin}…: credentials in the URL are not supported`);
  if (u.protocol === "http:") {
    if (!isLoopbackHost(u.hostname)) {
      throw new InputError("PCCS_URL_INSECURE", `${what} ${url}: plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost); use https`);
    }
  } else if (u.protocol !== "https:") {
    throw new InputError("PCCS_URL_INVALID", `${what} ${url}: scheme ${u.protocol} is not supported (https, or http to a loopback host)`);
  }
  return u;
}

/**
 * The service base URL, ending in "/", without a trailing "sgx|tdx/certification/v4".
 * Any other path (a PCCS behind a reverse proxy at /pccs/) is kept.
 */
export function normalisePccsUrl(url: string): string {
  const u = checkedUrl(url, "PCCS URL");
  if (u.search || u.hash) throw new InputError("PCCS_URL_INVALID", `PCCS URL ${url}: a query or fragment is not supported`);
  let path = u.pathname.replace(/\/+$/, "");
  const api = /\/(sgx|tdx)\/certification\/(v\d+)$/i.exec(path);
  if (api) {
    if (api[2]!.toLowerCase() !== "v4") throw new InputError("PCCS_URL_INVALID", `PCCS URL ${url}: API ${api[2]} is not supported (v4 is)`);
    path = path.slice(0, api.index);
  }
  return `${u.origin}${path}/`;
}

function isIntelPcs(base: string): boolean {
  const host = new URL(base).hostname.toLowerCase();
  return host === "trustedservices.intel.com" || host.endsWith(".trustedservices.intel.com");
}

/** The four URLs fetched for `key` from the normalised `base`. */
export function collateralUrls(base: string, key: CollateralKey, rootCaCrlUrl?: string): CollateralUrls {
  const k = checkKey(key);
  const b = normalisePccsUrl(base);
  const tee = k.tee === "TDX" ? "tdx" : "sgx";
  return {
    tcbInfo: `${b}${tee}/certification/v4/tcb?fmspc=${k.fmspc.toUpperCase()}`,
    qeIdentity: `${b}${tee}/certification/v4/qe/identity`,
    pckCrl: `${b}sgx/certification/v4/pckcrl?ca=${k.ca}&encoding=der`,
    rootCaCrl: rootCaCrlUrl !== undefined ? checkedUrl(rootCaCrlUrl, "root CA CRL URL").href : isIntelPcs(b) ? INTEL_ROOT_CA_CRL_URL : `${b}sgx/certification/v4/rootcacrl`,
  };
}

// ---- keys ----------------------------------------------------------------------------------

function checkKey(key: CollateralKey): CollateralKey {
  const k = key as Partial<Record<keyof CollateralKey, unknown>> | null;
  if (k === null || typeof k !== "object") throw new InputError("COLLATERAL_KEY_INVALID", "collateral key must be an object { tee, fmspc, ca }");
  if (k.tee !== "SGX" && k.tee !== "TDX") throw new InputError("COLLATERAL_KEY_INVALID", `collateral key: tee must be "SGX" or "TDX", got ${JSON.stringify(k.tee)}`);
  if (typeof k.fmspc !== "string" || !/^[0-9a-fA-F]{12}$/.test(k.fmspc)) {
    throw new InputError("COLLATERAL_KEY_INVALID", `collateral key: fmspc must be 12 hex digits, got ${JSON.stringify(k.fmspc)}`);
  }
  if (k.ca !== "processor" && k.ca !== "platform") throw new InputError("COLLATERAL_KEY_INVALID", `collateral key: ca must be "processor" or "platform", got ${JSON.stringify(k.ca)}`);
  return { tee: k.tee, fmspc: k.fmspc.toLowerCase(), ca: k.ca };
}

const keyId = (k: CollateralKey) => `${k.tee.toLowerCase()}-${k.fmspc}-${k.ca}`;
const keyLabel = (k: CollateralKey) => `${k.tee} FMSPC ${k.fmspc} (${k.ca} CA)`;

/** "processor" / "platform" from a CA's name: its CN ends in "Processor CA" / "Platform CA" (Intel's and the dev PKI's). */
function caOfName(nameText: string): "processor" | "platform" | null {
  const cn = /(?:^|[,+])CN=((?:\\.|[^,+\\])*)/.exec(nameText)?.[1];
  if (cn === undefined) return null;
  if (/\bProcessor CA$/i.test(cn)) return "processor";
  if (/\bPlatform CA$/i.test(cn)) return "platform";
  return null;
}

/**
 * The collateral a quote needs: its TEE, the FMSPC in its PCK certificate, and the CA that issued
 * that certificate. The PCK chain must lead to a trusted root at `at` (Intel's, or one of
 * `trustRoots`): collateral is never fetched for a chain nobody vouches for.
 */
export function collateralKeyOf(quote: Uint8Array, trustRoots: (string | Uint8Array)[] = [], at: Date = new Date()): CollateralKey {
  const q = parseQuote(quote);
  const certs = pckCertificates(q);
  if (!certs.ok) throw new InputError("PCK_CHAIN_MISSING", certs.reason.replace(/^PCK_CHAIN_MISSING: /, ""));
  const chain = checkPckChain(certs.value, trustAnchors(trustRoots), at);
  if (!chain.ok) throw new InputError("PCK_CHAIN_UNTRUSTED", `PCK chain: ${chain.reason}`);
  const leaf = chain.value.path[0]!;
  const ext = parsePckExtension(leaf);
  const ca = caOfName(leaf.issuerText);
  if (ca === null) throw new InputError("PCK_CA_UNKNOWN", `PCK certificate issuer ${leaf.issuerText} is neither a Processor CA nor a Platform CA`);
  return { tee: q.teeType, fmspc: toHex(ext.fmspc), ca };
}

// ---- checking ------------------------------------------------------------------------------

interface Vouched {
  anchor: TrustAnchor;
  nextUpdate: Date;
}

function pckCrlProblem(col: Collateral, anchor: TrustAnchor, at: Date): string | null {
  const signer = findLeaf(col.pckCrlIssuerChain);
  if (typeof signer === "string") return `PCK CRL issuer chain: ${signer}`;
  const path = validatePath(signer, col.pckCrlIssuerChain, [anchor], at);
  if (!path.ok) return `PCK CRL issuer chain: ${path.reason}`;
  if (!equalBytes(col.pckCrl.issuer, signer.subject)) return `PCK CRL is issued by ${col.pckCrl.issuerText}, its issuer chain names ${signer.subjectText}`;
  if (!verifySignedBy(col.pckCrl, signer)) return `PCK CRL signature does not verify under ${signer.subjectText}`;
  return null;
}

/** Throws unless `col` is what `key` asks for and verifies under one of `anchors` at `at`. */
function vouch(col: Collateral, key: CollateralKey, anchors: readonly TrustAnchor[], at: Date): Vouched {
  const t = col.tcbInfo.parsed;
  if (t.id !== key.tee) throw new CollateralError("COLLATERAL_MISMATCH", `TCB info is for ${t.id}, not ${key.tee}`);
  if (t.fmspc !== key.fmspc) throw new CollateralError("COLLATERAL_MISMATCH", `TCB info is for FMSPC ${t.fmspc}, not ${key.fmspc}`);
  const qeId = key.tee === "TDX" ? "TD_QE" : "QE";
  if (col.qeIdentity.parsed.id !== qeId) throw new CollateralError("COLLATERAL_MISMATCH", `QE identity is ${col.qeIdentity.parsed.id}, not ${qeId}`);
  if (caOfName(col.pckCrl.issuerText) !== key.ca) throw new CollateralError("COLLATERAL_MISMATCH", `PCK CRL is issued by ${col.pckCrl.issuerText}, not by the ${key.ca} CA`);
  const problems: string[] = [];
  for (const anchor of anchors) {
    const cc = checkCollateral(col, anchor, at);
    const problem = cc.signature.ok ? pckCrlProblem(col, anchor, at) : cc.signature.detail;
    if (problem === null) return { anchor, nextUpdate: cc.fresh.nextUpdate };
    problems.push(`under ${anchor.cert.subjectText}: ${problem}`);
  }
  throw new CollateralError("COLLATERAL_SIGNATURE", `collateral does not verify under any trust root (${problems.join("; ")})`);
}

function describe(e: unknown): string {
  if (e instanceof EvidenceError) return `${e.code}: ${e.message}`;
  return `${(e as Error)?.name ?? "Error"}: ${(e as Error)?.message ?? String(e)}`;
}

// ---- HTTP ----------------------------------------------------------------------------------

interface HttpAnswer {
  url: string;
  headers: Headers;
  body: Uint8Array;
}

function networkError(e: unknown, url: string, timeoutMs: number): CollateralError {
  if (e instanceof EvidenceError) return e as CollateralError;
  const err = e as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } } | undefined;
  if (err?.name === "TimeoutError" || err?.name === "AbortError") {
    return new CollateralError("PCCS_TIMEOUT", `GET ${url}: no complete answer within ${timeoutMs} ms`);
  }
  const code = err?.cause?.code ?? err?.code;
  const detail = err?.cause?.message ?? err?.message ?? String(e);
  return new CollateralError("PCCS_UNREACHABLE", `GET ${url}: ${code && !detail.includes(code) ? `${code} ${detail}` : detail}`);
}

function tooLarge(url: string, size: number | null): CollateralError {
  return new CollateralError("PCCS_RESPONSE_TOO_LARGE", `GET ${url}: answer ${size === null ? "exceeds" : `of ${size} bytes exceeds`} the limit of ${PCCS_MAX_BODY_BYTES} bytes`);
}

async function readBounded(res: Response, url: string): Promise<Uint8Array> {
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > PCCS_MAX_BODY_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(url, Number(declared));
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > PCCS_MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(url, null);
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks, n));
}

function header(a: HttpAnswer, names: string[]): string {
  for (const name of names) {
    const v = a.headers.get(name);
    if (v === null) continue;
    let text: string;
    try {
      text = decodeURIComponent(v);
    } catch {
      throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: header ${name} is not valid percent-encoding`);
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: header ${name} holds no PEM certificate`);
    return text;
  }
  throw new CollateralError("PCCS_HEADER_MISSING", `GET ${a.url}: no ${names.join(" or ")} header`);
}

function utf8(a: HttpAnswer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(a.body);
  } catch {
    throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: body is not UTF-8`);
  }
}

/** A CRL answer as DER: DER itself, PEM ("X509 CRL"), or hex text (Intel's PCCS /rootcacrl). */
function crlDer(a: HttpAnswer): Uint8Array {
  const b = a.body;
  if (b.length === 0) throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: empty body`);
  if (b[0] === 0x30) return b;
  const text = Buffer.from(b).toString("latin1").trim();
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) return fromHex(text);
  if (text.includes("-----BEGIN X509 CRL-----")) {
    try {
      const der = pemBlocks(text, "X509 CRL")[0];
      if (der) return der;
    } catch (e) {
      throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: ${(e as Error).message}`);
    }
  }
  throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: body is not a CRL (neither DER, PEM nor hex)`);
}

// ---- the client ----------------------------------------------------------------------------

interface Entry {
  qvl: DcapQvlCollateral;
  fetchedAt: Date;
  nextUpdate: Date;
  /** No request before this time. */
  nextAttempt: Date;
  /** The last failed refresh, "CODE: detail". */
  error: string | null;
}

function expandHome(p: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return join(homedir(), p.slice(2));
  return p;
}

function numberOption(v: number | undefined, name: string, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min) throw new InputError("PCCS_OPTIONS_INVALID", `PCCS option ${name} must be a number ≥ ${min}, got ${JSON.stringify(v)}`);
  return v;
}

export class PccsClient {
  /** The normalised service base. */
  readonly baseUrl: string;
  readonly cacheDir: string | null;
  private readonly rootCaCrlUrl: string | undefined;
  private readonly anchors: TrustAnchor[];
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retryAfterMs: number;
  private readonly now: () => Date;
  private readonly warn: (message: string) => void;
  private readonly memory = new Map<string, Entry>();
  private readonly failures = new Map<string, { error: CollateralError; until: Date }>();
  private readonly inflight = new Map<string, Promise<FetchedCollateral>>();

  constructor(opts: PccsOptions) {
    if (opts === null || typeof opts !== "object") throw new InputError("PCCS_OPTIONS_INVALID", "PCCS options must be an object");
    this.baseUrl = normalisePccsUrl(opts.url);
    if (opts.rootCaCrlUrl !== undefined) checkedUrl(opts.rootCaCrlUrl, "root CA CRL URL");
    this.rootCaCrlUrl = opts.rootCaCrlUrl;
    if (opts.cacheDir !== null && (typeof opts.cacheDir !== "string" || opts.cacheDir === "")) {
      throw new InputError("PCCS_OPTIONS_INVALID", "PCCS option cacheDir must be a directory path or null");
    }
    this.cacheDir = opts.cacheDir === null ? null : expandHome(opts.cacheDir);
    this.anchors = trustAnchors(opts.trustRoots ?? []);
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new InputError("PCCS_OPTIONS_INVALID", "no fetch implementation available");
    this.fetchImpl = f;
    this.timeoutMs = numberOption(opts.timeoutMs, "timeoutMs", PCCS_DEFAULT_TIMEOUT_MS, 1);
    this.retryAfterMs = numberOption(opts.retryAfterMs, "retryAfterMs", PCCS_DEFAULT_RETRY_AFTER_MS, 0);
    this.now = opts.now ?? (() => new Date());
    this.warn = opts.warn ?? ((m) => process.stderr.write(`attestable-mcp: WARNING: ${m}\n`));
  }

  /** Collateral for `key`: cached while fresh, fetched when not, the last good copy when the service fails. */
  get(key: CollateralKey): Promise<FetchedCollateral> {
    let k: CollateralKey;
    try {
      k = checkKey(key);
    } catch (e) {
      return Promise.reject(e);
    }
    const id = keyId(k);
    const running = this.inflight.get(id);
    if (running) return running;
    const p = this.resolve(k, id).finally(() => this.inflight.delete(id));
    this.inflight.set(id, p);
    return p;
  }

  private async resolve(k: CollateralKey, id: string): Promise<FetchedCollateral> {
    const now = this.now();
    let entry = this.memory.get(id);
    const inMemory = entry !== undefined;
    if (!entry) {
      entry = (await this.load(k, id, now)) ?? undefined;
      if (entry) this.memory.set(id, entry);
    }
    if (entry && now < entry.nextAttempt) return this.served(entry, now);
    if (entry && inMemory) {
      // Another process sharing the cache directory may have refreshed it already.
      const disk = await this.load(k, id, now);
      if (disk && disk.fetchedAt > entry.fetchedAt && now < disk.nextUpdate) {
        this.memory.set(id, disk);
        return this.served(disk, now);
      }
    } else if (!entry) {
      const failed = this.failures.get(id);
      if (failed && now < failed.until) throw failed.error;
    }

    try {
      const fresh = await this.fetchCollateral(k);
      const vouched = vouch(prepareCollateral(partsFromDcapQvl(fresh as unknown as Record<string, unknown>)), k, this.anchors, now);
      const got: Entry = {
        qvl: fresh,
        fetchedAt: now,
        nextUpdate: vouched.nextUpdate,
        nextAttempt: vouched.nextUpdate > now ? vouched.nextUpdate : new Date(now.getTime() + this.retryAfterMs),
        error: null,
      };
      this.memory.set(id, got);
      this.failures.delete(id);
      await this.store(k, id, got);
      return { collateral: { ...fresh }, source: "network", fetchedAt: now.toISOString(), nextUpdate: got.nextUpdate.toISOString(), error: null };
    } catch (e) {
      const reason = describe(e);
      const until = new Date(now.getTime() + this.retryAfterMs);
      if (entry) {
        entry.error = reason;
        entry.nextAttempt = until;
        return this.served(entry, now);
      }
      const err = new CollateralError("COLLATERAL_UNAVAILABLE", `no collateral for ${keyLabel(k)} from ${this.baseUrl}: ${reason}`);
      err.cause = e;
      this.failures.set(id, { error: err, until });
      throw err;
    }
  }

  private served(entry: Entry, now: Date): FetchedCollateral {
    const fresh = now < entry.nextUpdate;
    return {
      collateral: { ...entry.qvl },
      source: fresh ? "cache" : "stale-cache",
      fetchedAt: entry.fetchedAt.toISOString(),
      nextUpdate: entry.nextUpdate.toISOString(),
      error: fresh ? null : (entry.error ?? `the newest collateral the service gave is past its nextUpdate ${entry.nextUpdate.toISOString()}; next request after ${entry.nextAttempt.toISOString()}`),
    };
  }

  // ---- network ----

  private async request(url: string): Promise<HttpAnswer> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const res = await this.fetchImpl(url, { signal, redirect: "follow" });
      if (res.url && res.url !== url) {
        try {
          checkedUrl(res.url, "redirect target");
        } catch (e) {
          await res.body?.cancel().catch(() => undefined);
          throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${url}: redirected to ${res.url}, which is not https (${(e as Error).message})`);
        }
      }
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        const intel = [res.headers.get("error-code"), res.headers.get("error-message")].filter((x) => x).join(" ");
        throw new CollateralError("PCCS_HTTP_STATUS", `GET ${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}${intel ? ` (${intel})` : ""}`);
      }
      return { url, headers: res.headers, body: await readBounded(res, url) };
    } catch (e) {
      throw networkError(e, url, this.timeoutMs);
    }
  }

  private async fetchCollateral(k: CollateralKey): Promise<DcapQvlCollateral> {
    const urls = collateralUrls(this.baseUrl, k, this.rootCaCrlUrl);
    const [tcb, qe, pck, root] = await Promise.all([urls.tcbInfo, urls.qeIdentity, urls.pckCrl, urls.rootCaCrl].map((u) => this.request(u)));
    const tcbBody = splitSignedBody(utf8(tcb!), "tcbInfo", `GET ${tcb!.url}`);
    const qeBody = splitSignedBody(utf8(qe!), "enclaveIdentity", `GET ${qe!.url}`);
    return {
      pck_crl_issuer_chain: header(pck!, ["SGX-PCK-CRL-Issuer-Chain"]),
      root_ca_crl: toHex(crlDer(root!)),
      pck_crl: toHex(crlDer(pck!)),
      tcb_info_issuer_chain: header(tcb!, ["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"]),
      tcb_info: tcbBody.text,
      tcb_info_signature: toHex(tcbBody.signature),
      qe_identity_issuer_chain: header(qe!, ["SGX-Enclave-Identity-Issuer-Chain"]),
      qe_identity: qeBody.text,
      qe_identity_signature: toHex(qeBody.signature),
    };
  }

  // ---- disk ----

  private file(id: string): string | null {
    return this.cacheDir === null ? null : join(this.cacheDir, `${id}.json`);
  }

  /** The cached copy on disk, verified again; null when there is none or it does not verify. */
  private async load(k: CollateralKey, id: string, now: Date): Promise<Entry | null> {
    const file = this.file(id);
    if (file === null) return null;
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.warn(`PCCS cache ${file} is unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ignoring it`);
      return null;
    }
    try {
      const o = JSON.parse(text) as Record<string, unknown>;
      if (o === null || typeof o !== "object" || o.format !== CACHE_FORMAT) throw new Error(`not a ${CACHE_FORMAT} file`);
      if (o.tee !== k.tee || o.fmspc !== k.fmspc || o.ca !== k.ca) throw new Error("it is for another key");
      const fetchedAt = new Date(typeof o.fetchedAt === "string" ? o.fetchedAt : NaN);
      if (Number.isNaN(fetchedAt.getTime())) throw new Error("fetchedAt is not a time");
      const c = o.collateral;
      if (c === null || typeof c !== "object" || Array.isArray(c)) throw new Error("no collateral object");
      const qvl = c as Record<string, unknown>;
      const vouched = vouch(prepareCollateral(partsFromDcapQvl(qvl)), k, this.anchors, now);
      return { qvl: qvl as unknown as DcapQvlCollateral, fetchedAt, nextUpdate: vouched.nextUpdate, nextAttempt: vouched.nextUpdate, error: null };
    } catch (e) {
      this.warn(`PCCS cache ${file} is not used: ${e instanceof EvidenceError ? describe(e) : (e as Error).message}`);
      return null;
    }
  }

  private async store(k: CollateralKey, id: string, entry: Entry): Promise<void> {
    const file = this.file(id);
    if (file === null || this.cacheDir === null) return;
    const tmp = join(this.cacheDir, `.${id}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
    const doc = { format: CACHE_FORMAT, ...k, source: this.baseUrl, fetchedAt: entry.fetchedAt.toISOString(), nextUpdate: entry.nextUpdate.toISOString(), collateral: entry.qvl };
    try {
      await mkdir(this.cacheDir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, `${JSON.stringify(doc)}\n`, { mode: 0o600 });
      await rename(tmp, file);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      this.warn(`PCCS cache ${file} could not be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); collateral is kept in memory only`);
    }
  }
}
