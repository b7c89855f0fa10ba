/**
 * The proxy's TLS identity: a fresh key and an RA-TLS certificate whose quotes bind it.
 *
 * Minted at start (start fails if it cannot be), re-minted at `renewFraction` of its lifetime,
 * and swapped by whoever listens to "rotated" (tls.Server#setSecureContext affects only new
 * handshakes, so live connections keep theirs). A failed rotation keeps the current certificate,
 * marks the identity unhealthy and retries until the certificate expires. The private key lives
 * only in memory: nothing here writes it anywhere.
 */
import { createHash, generateKeyPairSync, type KeyObject } from "node:crypto";
import { EventEmitter } from "node:events";
import { equalBytes } from "../core/bytes.js";
import { AttestationError, InputError } from "../core/errors.js";
import { parseQuote } from "../evidence/dcap/quote.js";
import { derToPem } from "./build/x509.js";
import { buildClaims, buildRaTlsCertificate, legacyReportData, spkiOf, taggedReportData } from "./build/ratls.js";
import type { AttestationProvider } from "./provider.js";

export type KeyType = "P-384" | "P-256";

export interface IdentityOptions {
  provider: AttestationProvider;
  /** P-384 by default: Gramine 1.4–1.7 verifiers accept only P-384. */
  keyType?: KeyType;
  /** Certificate lifetime (default 24 h). */
  lifetimeMs?: number;
  /** notBefore is this far in the past, for clients with slow clocks (default 5 min). */
  backdateMs?: number;
  /** Re-mint at this fraction of the lifetime (default 0.8). */
  renewFraction?: number;
  /** Retry interval after a failed rotation (default lifetime / 20, at most 60 s). */
  retryMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export interface MintedIdentity {
  key: KeyObject;
  keyPem: string;
  certDer: Uint8Array;
  certPem: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the certificate DER, hex. */
  fingerprint: string;
  keyType: KeyType;
}

export const DEFAULT_LIFETIME_MS = 24 * 3600_000;

/**
 * A quote from `provider` that carries `reportData`. One that does not parse, or carries other
 * report data, would put a certificate (or a nonce answer) without evidence on the wire: it is
 * refused here, whatever the provider, so that start-up fails and a rotation keeps the current
 * certificate.
 */
export async function quoteOver(provider: AttestationProvider, reportData: Uint8Array): Promise<Uint8Array> {
  const quote = await provider.quote(reportData);
  let carried: Uint8Array;
  try {
    carried = parseQuote(quote).body.reportData;
  } catch (e) {
    throw new AttestationError("QUOTE_UNBOUND", `the attestation provider returned no usable quote: ${(e as Error).message}`);
  }
  if (!equalBytes(carried, reportData)) throw new AttestationError("QUOTE_UNBOUND", "the attestation provider returned a quote over other report data");
  return quote;
}

/**
 * One key, one certificate, and its quotes: the TCG tagged-evidence quote always, and for an SGX
 * enclave also Gramine's legacy quote (an SGX-only extension: a TDX quote goes in the TCG one alone).
 */
export async function mintIdentity(opts: IdentityOptions): Promise<MintedIdentity> {
  const keyType = opts.keyType ?? "P-384";
  if (keyType !== "P-384" && keyType !== "P-256") throw new InputError("IDENTITY_OPTIONS_INVALID", `certificate key type must be P-384 or P-256, got ${String(keyType)}`);
  const lifetime = opts.lifetimeMs ?? DEFAULT_LIFETIME_MS;
  if (!(lifetime > 0)) throw new InputError("IDENTITY_OPTIONS_INVALID", "certificate lifetime must be positive");
  const now = opts.now?.() ?? Date.now();
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: keyType });
  const spki = spkiOf(privateKey);
  const claims = buildClaims(spki);
  // The provider serialises its own access; asking in sequence keeps the order obvious.
  const taggedQuote = await quoteOver(opts.provider, taggedReportData(claims));
  // What the quote says it is decides, not what the provider claims to be.
  const sgx = parseQuote(taggedQuote).teeType === "SGX";
  const legacyQuote = sgx ? await quoteOver(opts.provider, legacyReportData(spki)) : undefined;
  const notBefore = new Date(now - (opts.backdateMs ?? 5 * 60_000));
  const notAfter = new Date(now + lifetime);
  const certDer = buildRaTlsCertificate({ key: privateKey, claims, taggedQuote, legacyQuote, notBefore, notAfter });
  return {
    key: privateKey,
    keyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    certDer,
    certPem: derToPem(certDer),
    notBefore,
    notAfter,
    fingerprint: createHash("sha256").update(certDer).digest("hex"),
    keyType,
  };
}

export interface Identity {
  on(event: "rotated", listener: (id: MintedIdentity) => void): this;
  on(event: "rotation-failed", listener: (error: Error, current: MintedIdentity) => void): this;
  on(event: "expired", listener: (current: MintedIdentity) => void): this;
}

export class Identity extends EventEmitter {
  private cur: MintedIdentity;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private stopped = false;
  private rotating: Promise<MintedIdentity> | null = null;
  private expiredReported: MintedIdentity | null = null;

  private constructor(
    private readonly opts: IdentityOptions,
    first: MintedIdentity,
  ) {
    super();
    this.cur = first;
    this.schedule();
  }

  /** Mint the first identity; a provider that cannot attest makes this reject. */
  static async start(opts: IdentityOptions): Promise<Identity> {
    return new Identity(opts, await mintIdentity(opts));
  }

  get current(): MintedIdentity {
    return this.cur;
  }

  /** False from a failed rotation until the next success, and once the certificate has expired. */
  get healthy(): boolean {
    return !this.failing && this.now() < this.cur.notAfter.getTime();
  }

  /** For tls.createServer / server.setSecureContext. */
  secureContextOptions(): { key: string; cert: string } {
    return { key: this.cur.keyPem, cert: this.cur.certPem };
  }

  /** Re-mint now (also what the timer does). Concurrent calls share one rotation. */
  rotate(): Promise<MintedIdentity> {
    this.rotating ??= mintIdentity(this.opts)
      .then(
        (next) => {
          this.cur = next;
          this.failing = false;
          this.emit("rotated", next);
          return next;
        },
        (e: unknown) => {
          this.failing = true;
          const err = e instanceof Error ? e : new Error(String(e));
          this.emit("rotation-failed", err, this.cur);
          throw err;
        },
      )
      .finally(() => {
        this.rotating = null;
        this.schedule();
      });
    return this.rotating;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const { notBefore, notAfter } = this.cur;
    const now = this.now();
    if (now >= notAfter.getTime() && this.expiredReported !== this.cur) {
      this.expiredReported = this.cur;
      this.emit("expired", this.cur);
    }
    const issued = notBefore.getTime() + (this.opts.backdateMs ?? 5 * 60_000);
    const lifetime = notAfter.getTime() - issued;
    const renewAt = issued + lifetime * (this.opts.renewFraction ?? 0.8);
    const retry = this.opts.retryMs ?? Math.min(60_000, lifetime / 20);
    const delay = this.failing ? retry : Math.max(0, renewAt - now);
    this.timer = setTimeout(() => {
      this.rotate().catch(() => {
        // reported through "rotation-failed"; the timer retries
      });
    }, delay);
    this.timer.unref();
  }
}
