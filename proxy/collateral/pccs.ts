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
 *
 * Beside this file: key.ts (which collateral a quote needs), pccs-http.ts (URLs and reading
 * answers), vouch.ts (what makes a copy usable), cache.ts (the copy on disk).
 */
import { join } from "node:path";
import { toHex } from "../core/bytes.js";
import { CollateralError, InputError } from "../core/errors.js";
import { expandHome } from "../core/schema.js";
import { prepareCollateral, splitSignedBody } from "../evidence/dcap/collateral.js";
import { partsFromDcapQvl, type DcapQvlCollateral } from "../evidence/dcap/collateral-files.js";
import { trustAnchors, type TrustAnchor } from "../evidence/dcap/roots.js";
import { readCached, writeCached, type Entry } from "./cache.js";
import { checkKey, keyId, keyLabel, type CollateralKey } from "./key.js";
import { checkedUrl, collateralUrls, crlDer, describe, header, networkError, normalisePccsUrl, readBounded, utf8, type HttpAnswer } from "./pccs-http.js";
import { vouch } from "./vouch.js";

export { collateralKeyOf, type CollateralKey } from "./key.js";
export { collateralUrls, normalisePccsUrl, INTEL_PCS_URL, INTEL_ROOT_CA_CRL_URL, PCCS_MAX_BODY_BYTES, type CollateralUrls } from "./pccs-http.js";

export const PCCS_DEFAULT_TIMEOUT_MS = 10_000;
export const PCCS_DEFAULT_RETRY_AFTER_MS = 30_000;

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
      const err = new CollateralError("COLLATERAL_UNAVAILABLE", `no collateral for ${keyLabel(k)} from ${this.baseUrl}: ${reason}`, undefined, { cause: e });
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

  private load(k: CollateralKey, id: string, now: Date): Promise<Entry | null> {
    return this.cacheDir === null ? Promise.resolve(null) : readCached(join(this.cacheDir, `${id}.json`), k, this.anchors, now, this.warn);
  }

  private async store(k: CollateralKey, id: string, entry: Entry): Promise<void> {
    if (this.cacheDir !== null) await writeCached(this.cacheDir, id, k, this.baseUrl, entry, this.warn);
  }
}
