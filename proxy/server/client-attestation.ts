/**
 * Mutual attestation: the listener asks every TLS client for a certificate and judges its RA-TLS
 * evidence against `clientAttestation.policy` before any request on that connection is routed.
 *
 * Why the shape is what it is:
 * - The quote, not a CA, is the client's identity, so TLS accepts any certificate
 *   (`rejectUnauthorized: false`); the TLS handshake still proves the client holds the
 *   certificate's key (CertificateVerify), and the certificate's quote binds that key.
 * - Node verifies client certificates synchronously inside OpenSSL, and only against CAs; our
 *   appraisal is asynchronous (collateral may come from the network). So the verdict is computed
 *   after the handshake and every request (forwarded, stdio, /.well-known, /healthz, upgrades) on
 *   the connection waits for it. A TLS alert is not possible at that point (the handshake is over
 *   and Node offers no way to send one), so a refused connection is answered with a 403 naming the
 *   failed check when a request is already waiting, or within a short grace, and is then closed.
 * - Verdicts are cached by certificate fingerprint until the certificate or its collateral
 *   expires, so a client that reconnects is not re-appraised; rejections are cached briefly only,
 *   since some (collateral unavailable) are transient.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { AppraisalTimeout, ClientPolicyError } from "../core/errors.js";
import { appraisalExpiry, ExpiringCache } from "../evidence/appraisal-cache.js";
import { collateralSource } from "../collateral/source.js";
import { appraiseCertificate, type Appraisal, type CollateralSource } from "../evidence/appraise.js";
import type { Policy } from "../evidence/policy.js";
import { jsonRpcErrorBody } from "../core/jsonrpc.js";
import { answerUpgrade } from "./admission.js";
import { MRENCLAVE_HEADER, MRSIGNER_HEADER, MRTD_HEADER, RTMR_HEADER_PREFIX, VERDICT_HEADER } from "../core/protocol.js";

export type ClientAttestationMode = "off" | "optional" | "required";

/** What a trusted client is: an SGX enclave or a TDX trust domain, as its quote says. */
export type ClientIdentity = { tee: "SGX"; mrenclave: string; mrsigner: string } | { tee: "TDX"; mrtd: string; rtmr: string[] };

export type ClientVerdict =
  | ({ state: "trusted"; fingerprint: string; dev: boolean } & ClientIdentity)
  | { state: "absent" }
  | { state: "rejected"; fingerprint: string; check: string; reason: string };

// Declared with the catalogue; loadClientPolicy (server/config.ts) throws it while loading the config.
export { ClientPolicyError };

/** How long a rejection is remembered: long enough to absorb a reconnect loop, short for transient causes. */
export const REJECTION_TTL_MS = 60_000;
/** An appraisal that takes longer (a hung collateral service) rejects the client. */
export const APPRAISAL_TIMEOUT_MS = 20_000;
/** A refused connection waits this long for a request to answer with 403, then is destroyed. */
export const REFUSAL_GRACE_MS = 2_000;
export const DEFAULT_CACHE_ENTRIES = 1024;

export interface AppraiserOptions {
  policy: Policy;
  /** Defaults to the policy's own collateral source. */
  collateral?: CollateralSource;
  maxEntries?: number;
  rejectionTtlMs?: number;
  timeoutMs?: number;
  now?: () => number;
  /** Called once per appraisal actually run (not for cache hits). */
  onAppraised?: (verdict: ClientVerdict, appraisal: Appraisal | null, ms: number) => void;
}

export function verdictOf(fingerprint: string, a: Appraisal): ClientVerdict {
  const q = a.quote;
  if (a.ok && q !== null) {
    const id: ClientIdentity = q.teeType === "SGX" ? { tee: "SGX", mrenclave: q.mrenclave, mrsigner: q.mrsigner } : { tee: "TDX", mrtd: q.mrtd, rtmr: q.rtmr };
    return { state: "trusted", fingerprint, dev: a.dev, ...id };
  }
  // A verdict without a quote is never ok (outcome requires one); fail closed anyway.
  return { state: "rejected", fingerprint, check: a.failed?.check ?? "policy.measurement", reason: a.failed?.reason ?? "no enclave or TD identity" };
}

/** Appraises client certificates, one appraisal per certificate while its verdict is valid. */
export class ClientAppraiser {
  private readonly cache: ExpiringCache<{ verdict: ClientVerdict; until: number }>;
  private readonly source: CollateralSource;
  private readonly rejectionTtl: number;
  private readonly timeout: number;
  private readonly now: () => number;

  constructor(private readonly opts: AppraiserOptions) {
    this.source = opts.collateral ?? collateralSource(opts.policy, { timeoutMs: Math.min(10_000, opts.timeoutMs ?? APPRAISAL_TIMEOUT_MS) });
    this.rejectionTtl = opts.rejectionTtlMs ?? REJECTION_TTL_MS;
    this.timeout = opts.timeoutMs ?? APPRAISAL_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
    this.cache = new ExpiringCache(opts.maxEntries ?? DEFAULT_CACHE_ENTRIES, this.now);
  }

  get size(): number {
    return this.cache.size;
  }

  async appraise(der: Uint8Array): Promise<ClientVerdict> {
    const fingerprint = createHash("sha256").update(der).digest("hex");
    const { value } = await this.cache.get(
      fingerprint,
      () => this.run(fingerprint, der),
      (r) => r.until,
    );
    return value.verdict;
  }

  /** Never rejects: every failure is a verdict. */
  private async run(fingerprint: string, der: Uint8Array): Promise<{ verdict: ClientVerdict; until: number }> {
    const t0 = performance.now();
    let appraisal: Appraisal | null = null;
    let verdict: ClientVerdict;
    let until: number;
    let timer: NodeJS.Timeout | undefined;
    try {
      appraisal = await Promise.race([
        appraiseCertificate(der, this.opts.policy, this.source),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new AppraisalTimeout(this.timeout)), this.timeout);
        }),
      ]);
      verdict = verdictOf(fingerprint, appraisal);
      const now = this.now();
      until = verdict.state === "trusted" ? appraisalExpiry(appraisal, this.opts.policy.tcb.maxCollateralAgeMs) : now + this.rejectionTtl;
    } catch (e) {
      // appraiseCertificate reports bad evidence in the verdict; landing here is our failure or a
      // timeout, which must not be remembered.
      const check = e instanceof AppraisalTimeout ? "appraisal.timeout" : "appraisal.error";
      verdict = { state: "rejected", fingerprint, check, reason: (e as Error).message };
      until = 0;
    } finally {
      clearTimeout(timer);
    }
    this.opts.onAppraised?.(verdict, appraisal, performance.now() - t0);
    return { verdict, until };
  }
}

export { MRENCLAVE_HEADER, MRSIGNER_HEADER, MRTD_HEADER, VERDICT_HEADER };

/** The identity of a trusted client, as headers for the upstream. */
function identityHeaders(v: ClientIdentity): Record<string, string> {
  if (v.tee === "SGX") return { [MRENCLAVE_HEADER]: v.mrenclave, [MRSIGNER_HEADER]: v.mrsigner };
  return { [MRTD_HEADER]: v.mrtd, ...Object.fromEntries(v.rtmr.map((r, i) => [`${RTMR_HEADER_PREFIX}${i}`, r])) };
}

/** What the upstream is told about the client (client-sent copies are stripped by the forwarder). */
export function verdictHeaders(v: ClientVerdict | null): Record<string, string> {
  if (v === null) return { [VERDICT_HEADER]: "rejected appraisal.missing" };
  if (v.state === "trusted") return { [VERDICT_HEADER]: "trusted", ...identityHeaders(v) };
  if (v.state === "absent") return { [VERDICT_HEADER]: "absent" };
  return { [VERDICT_HEADER]: `rejected ${v.check}` };
}

export interface ClientGateOptions {
  mode: Exclude<ClientAttestationMode, "off">;
  policy: Policy;
  log: Logger;
  /** One call per connection refused (required) or admitted with a rejected verdict (optional). */
  onFailure?: (check: string) => void;
  appraiser?: ClientAppraiser;
  graceMs?: number;
}

interface SocketState {
  verdict: ClientVerdict | null;
  ready: Promise<ClientVerdict>;
}

export interface ClientGate {
  readonly mode: ClientAttestationMode;
  /** For the TLS server options and every setSecureContext. */
  readonly tlsOptions: { requestCert: true; rejectUnauthorized: false };
  readonly appraiser: ClientAppraiser;
  /** Call on every 'secureConnection': starts the appraisal. */
  connection(socket: TLSSocket): void;
  /** Runs `next` once the connection's verdict admits it; answers 403 and closes otherwise. */
  hold(req: IncomingMessage, res: ServerResponse, next: () => void): void;
  holdUpgrade(req: IncomingMessage, socket: Duplex, next: () => void): void;
  /** Headers for the upstream (called by the forwarder once the verdict is in). */
  headers(req: IncomingMessage): Record<string, string>;
}

function refusalMessage(v: ClientVerdict): string {
  return v.state === "absent" ? "client attestation required: present an RA-TLS client certificate" : `client attestation failed: ${v.state === "rejected" ? v.check : "unknown"}`;
}

export function createClientGate(opts: ClientGateOptions): ClientGate {
  const { mode, log } = opts;
  const grace = opts.graceMs ?? REFUSAL_GRACE_MS;
  const states = new WeakMap<object, SocketState>();
  const appraiser =
    opts.appraiser ??
    new ClientAppraiser({
      policy: opts.policy,
      onAppraised: (v, a, ms) => {
        // Fingerprint prefix, verdict and failed check: enough to correlate, nothing secret.
        const line = { client: v.state === "absent" ? null : v.fingerprint.slice(0, 16), verdict: v.state, ms: Math.round(ms), dev: a?.dev ?? false };
        if (v.state === "trusted") log.info({ ...line, ...(v.tee === "SGX" ? { mrenclave: v.mrenclave, mrsigner: v.mrsigner } : { mrtd: v.mrtd, rtmr: v.rtmr }) }, "client appraisal");
        else if (v.state === "rejected") log.warn({ ...line, failed: v.check, reason: v.reason.slice(0, 300) }, "client appraisal");
      },
    });
  const refused = (v: ClientVerdict): boolean => v.state !== "trusted" && mode === "required";
  log.info({ mode, policy: opts.policy.source }, "client attestation on");

  const settle = (socket: TLSSocket, st: SocketState, v: ClientVerdict): void => {
    st.verdict = v;
    if (v.state === "rejected" || (v.state === "absent" && mode === "required")) opts.onFailure?.(v.state === "absent" ? "absent" : v.check);
    if (v.state === "absent") log[mode === "required" ? "info" : "debug"]({ client: null, verdict: "absent", refused: mode === "required" }, "client attestation");
    if (!refused(v)) return;
    // Let a request that is (about to be) waiting get its 403; a silent connection just ends.
    const t = setTimeout(() => socket.destroy(), grace);
    t.unref();
    socket.once("close", () => clearTimeout(t));
  };

  const stateOf = (s: unknown): SocketState | undefined => (s ? states.get(s as object) : undefined);

  return {
    mode,
    tlsOptions: { requestCert: true, rejectUnauthorized: false },
    appraiser,
    connection(socket) {
      const raw = (socket.getPeerCertificate() as { raw?: Buffer } | null)?.raw;
      const ready: Promise<ClientVerdict> = raw && raw.length > 0 ? appraiser.appraise(new Uint8Array(raw.buffer, raw.byteOffset, raw.length)) : Promise.resolve({ state: "absent" });
      const st: SocketState = { verdict: null, ready };
      states.set(socket, st);
      ready.then(
        (v) => settle(socket, st, v),
        (e: unknown) => settle(socket, st, { state: "rejected", fingerprint: "", check: "appraisal.error", reason: (e as Error).message }),
      );
    },
    hold(req, res, next) {
      const st = stateOf(req.socket);
      const decide = (v: ClientVerdict | null): void => {
        if (res.destroyed || res.writableEnded) return;
        if (v !== null && !refused(v)) return next();
        const body = jsonRpcErrorBody(v === null ? "client attestation unavailable for this connection" : refusalMessage(v));
        res.writeHead(403, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), Connection: "close" });
        res.end(body, () => req.socket.destroy());
      };
      // Every TLS connection gets a state on 'secureConnection'; without one, fail closed.
      if (!st) return decide(null);
      if (st.verdict) return decide(st.verdict);
      void st.ready.then(decide, () => decide(null));
    },
    holdUpgrade(req, socket, next) {
      const st = stateOf(req.socket);
      const decide = (v: ClientVerdict | null): void => {
        if (socket.destroyed) return;
        if (v !== null && !refused(v)) return next();
        answerUpgrade(socket, 403, v === null ? "client attestation unavailable for this connection" : refusalMessage(v));
        setTimeout(() => socket.destroy(), grace).unref();
      };
      if (!st) return decide(null);
      if (st.verdict) return decide(st.verdict);
      void st.ready.then(decide, () => decide(null));
    },
    headers(req) {
      return verdictHeaders(stateOf(req.socket)?.verdict ?? null);
    },
  };
}
