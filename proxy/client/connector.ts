/**
 * The verifying connector (DESIGN.md §5): an undici Agent whose `connect` hook opens the TLS
 * connection itself, appraises the peer's RA-TLS certificate against the policy, asks for fresh
 * evidence on that same connection when the policy says so, and only then hands the socket to
 * undici. A rejection destroys the socket: the request is never written, so the server (and
 * whatever it forwards to) sees nothing but a TLS handshake and, at most, the evidence request.
 *
 * Verification runs after the handshake and asynchronously, not in `checkServerIdentity`, which
 * is synchronous and cannot fetch collateral. The certificate is self-signed (the quote is the
 * identity), so Node's chain check is off; the key is trusted because the verified quote binds
 * it, and TLS proves the peer holds it.
 */
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { createSecureContext, connect as tlsConnect, type SecureContext, type TLSSocket } from "node:tls";
import { Agent, fetch as undiciFetch, type buildConnector } from "undici";
import { fromHex } from "../core/bytes.js";
import { collateralSource } from "../collateral/source.js";
import { appraiseCertificate, type Appraisal, type CollateralSource } from "../evidence/appraise.js";
import type { Policy } from "../evidence/policy.js";
import { freshness } from "./freshness.js";
import { AttestationRejectedError, ConnectorError } from "./errors.js";
import { VerdictCache } from "./verdict-cache.js";
import { connectionVerdict, type ConnectionVerdict, type FreshnessResult } from "./verdict.js";

export { AttestationRejectedError, ConnectorError } from "./errors.js";
export type { ConnectionVerdict, FreshnessResult } from "./verdict.js";

export interface ConnectorOptions {
  policy: Policy;
  /** Present this RA-TLS identity as the TLS client certificate (mutual attestation). */
  clientIdentity?: { keyPem: string; certPem: string } | null;
  /** Shared collateral source (default collateralSource(policy)). */
  collateral?: CollateralSource;
  /** Called once per connection that got a verdict, accepted or rejected (logs, bridge). */
  onVerdict?: (v: ConnectionVerdict) => void;
  /** TCP + TLS + verification bound (default 15 s). */
  connectTimeoutMs?: number;
  /**
   * attestedFetch only: the one origin (https:) whose requests are attested. Requests to any
   * other origin go through Node's own fetch, unattested: an OAuth authorization server and its
   * metadata, which the SDK's auth client fetches with the transport's fetch. Unset, every request
   * is attested and one to an http: URL is refused.
   */
  attestOnly?: string | URL;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/** What a busy retry leaves of connectTimeoutMs for the answer that follows it. */
const BUSY_MARGIN_MS = 1000;

interface Target {
  hostname: string;
  port: number;
  /** Host header value (host[:port] as in the URL). */
  host: string;
  servername: string | null;
}

/** Everything one policy's connections share: the collateral source, the verdict cache and the TLS context. */
interface Shared {
  opts: ConnectorOptions;
  collateral: CollateralSource;
  cache: VerdictCache | null;
  /** One for all connections: making one per connection costs about as much as a handshake's own work on the client. */
  tls: SecureContext;
}

function shared(opts: ConnectorOptions, cache: boolean): Shared {
  return {
    opts,
    collateral: opts.collateral ?? collateralSource(opts.policy),
    cache: cache ? new VerdictCache(opts.policy.tcb.maxCollateralAgeMs) : null,
    tls: createSecureContext(opts.clientIdentity ? { key: opts.clientIdentity.keyPem, cert: opts.clientIdentity.certPem } : {}),
  };
}

function refusePlaintext(protocol: string): void {
  if (protocol !== "https:") {
    throw new ConnectorError("INSECURE_URL", `refusing ${protocol}//: an attested connection needs https: (the evidence is in the TLS certificate)`);
  }
}

/** The socket at once (so a timeout can destroy it mid-handshake) and its handshake's end. */
function openTls(t: Target, s: Shared): { socket: TLSSocket; ready: Promise<TLSSocket> } {
  const socket = tlsConnect({
    host: t.hostname,
    port: t.port,
    ...(t.servername ? { servername: t.servername } : {}),
    ALPNProtocols: ["http/1.1"],
    // Self-signed by design: the quote, checked next, is what makes the key trusted.
    rejectUnauthorized: false,
    // Holds the client identity (mutual attestation), if any.
    secureContext: s.tls,
  });
  const ready = new Promise<TLSSocket>((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
  return { socket, ready };
}

const NOT_ASKED = (mode: FreshnessResult["mode"], why: string): FreshnessResult => ({ mode, ok: false, detail: why, nonce: null, exporter: null });

/**
 * The peer's certificate, DER, and its SHA-256 (hex). getPeerCertificate() converts the whole
 * certificate into an object, so it is called once per connection, its `raw` used as it is.
 */
function peerCertificate(socket: TLSSocket): Peer {
  const peer = socket.getPeerCertificate();
  const raw = peer && "raw" in peer && peer.raw ? peer.raw : Buffer.alloc(0);
  const sha256 = createHash("sha256").update(raw).digest();
  return { der: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), sha256: new Uint8Array(sha256.buffer, sha256.byteOffset, sha256.byteLength), fingerprint: sha256.toString("hex") };
}

interface Peer {
  der: Uint8Array;
  sha256: Uint8Array;
  /** sha256, hex. */
  fingerprint: string;
}

/** Appraise the peer (`der`, its certificate) of an open socket and check freshness on it. Never destroys the socket. */
async function judge(socket: TLSSocket, { der, sha256, fingerprint }: Peer, t: Target, s: Shared, deadline: number): Promise<ConnectionVerdict> {
  const { policy } = s.opts;
  const appraise = (): Promise<Appraisal> => appraiseCertificate(der, policy, s.collateral);
  const { appraisal, cached } = s.cache && der.length > 0 ? await s.cache.get(fingerprint, appraise) : { appraisal: await appraise(), cached: false };

  const mode = policy.freshness;
  if (!appraisal.ok) return connectionVerdict(appraisal, NOT_ASKED(mode, "not asked: the certificate was rejected"), [], fingerprint, cached);
  if (mode === "certificate") {
    const until = appraisal.certificate?.notAfter ?? "?";
    return connectionVerdict(
      appraisal,
      { mode, ok: true, detail: `the certificate's own evidence only (policy freshness: certificate); it may be as old as the certificate, valid until ${until}`, nonce: null, exporter: null },
      [],
      fingerprint,
      cached,
    );
  }
  // What the appraisal read from this certificate (or from the same bytes, when cached) is not read again.
  const fresh = await freshness(
    socket,
    t.host,
    mode,
    {
      peerCertDer: der,
      peerCertSha256: sha256,
      ...(appraisal.binding ? { spkiSha256: fromHex(appraisal.binding.spkiSha256) } : {}),
      certQuote: appraisal.quote,
      certPlatform: appraisal.platform,
      certDev: appraisal.dev,
      trustRoots: policy.anchors,
    },
    deadline,
  );
  return connectionVerdict(appraisal, fresh.result, fresh.checks, fingerprint, cached);
}

/** Open, judge, and return the socket with its verdict; bounded by connectTimeoutMs as a whole. */
async function attestedSocket(t: Target, s: Shared): Promise<{ socket: TLSSocket; verdict: ConnectionVerdict; certificate: Uint8Array }> {
  const bound = s.opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const { socket, ready } = openTls(t, s);
  // Until undici attaches its own, an error while the appraisal runs (a reset, say) must not go
  // unheard: an 'error' event without a listener would take the process down.
  let lost: Error | null = null;
  const onLost = (e: Error): void => void (lost ??= e);
  socket.on("error", onLost);
  const work = (async () => {
    await ready;
    const peer = peerCertificate(socket);
    // A busy server is waited out within the same bound, leaving room for the last answer.
    const verdict = await judge(socket, peer, t, s, Date.now() + bound - BUSY_MARGIN_MS);
    if (lost) throw lost;
    if (verdict.ok && socket.destroyed) throw new ConnectorError("CONNECTION_LOST", `${t.host} closed the connection while its evidence was being checked`);
    return { socket, verdict, certificate: peer.der };
  })();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConnectorError("CONNECT_TIMEOUT", `connecting to ${t.host} and verifying its evidence took over ${bound} ms`)), bound);
  });
  try {
    return await Promise.race([work, timeout]);
  } catch (e) {
    socket.destroy();
    // The loser of the race settles later (or never); nobody waits for it.
    work.catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
    socket.off("error", onLost);
  }
}

function targetOf(o: { hostname: string; host?: string; port: string | number; servername?: string }, defaultPort = 443): Target {
  const hostname = o.hostname.startsWith("[") ? o.hostname.slice(1, -1) : o.hostname;
  const port = Number(o.port) || defaultPort;
  return {
    hostname,
    port,
    host: o.host ?? (isIP(hostname) === 6 ? `[${hostname}]:${port}` : `${hostname}:${port}`),
    // SNI carries names only (RFC 6066 §3).
    servername: o.servername || (isIP(hostname) ? null : hostname),
  };
}

/** A throwing observer must not leave undici waiting for a callback that never comes. */
function report(opts: ConnectorOptions, v: ConnectionVerdict): void {
  try {
    opts.onVerdict?.(v);
  } catch {
    // the observer's own failure; the connection's fate does not depend on it
  }
}

function connectFunction(s: Shared): buildConnector.connector {
  return (options, callback) => {
    try {
      refusePlaintext(options.protocol);
    } catch (e) {
      callback(e as Error, null);
      return;
    }
    attestedSocket(targetOf(options), s).then(
      ({ socket, verdict }) => {
        report(s.opts, verdict);
        if (verdict.ok) {
          callback(null, socket);
        } else {
          socket.destroy();
          callback(new AttestationRejectedError(verdict), null);
        }
      },
      (e: unknown) => callback(e instanceof Error ? e : new Error(String(e)), null),
    );
  };
}

/** An undici Agent whose every connection is verified before undici writes a byte on it. */
export function createAttestedAgent(opts: ConnectorOptions): Agent {
  // No body timeout: MCP streams are quiet by nature (the background GET stream may carry
  // nothing for hours); the server bounds idleness, and the caller can abort.
  return new Agent({ connect: connectFunction(shared(opts, true)), bodyTimeout: 0 });
}

export interface AttestedFetch {
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  agent: Agent;
  close(): Promise<void>;
}

function isPolicy(x: Policy | ConnectorOptions): x is Policy {
  return "freshness" in x && "measurements" in x;
}

/**
 * A fetch for `new StreamableHTTPClientTransport(url, { fetch })`: every request goes through the
 * attested agent. Give it as `fetch`, not in `requestInit`: the SDK's background GET stream
 * ignores `requestInit`. Uses undici's own fetch, because Node's global fetch bundles another
 * undici whose dispatcher interface need not match this one.
 */
export function attestedFetch(policyOrOpts: Policy | ConnectorOptions): AttestedFetch {
  const opts: ConnectorOptions = isPolicy(policyOrOpts) ? { policy: policyOrOpts } : policyOrOpts;
  const only = opts.attestOnly === undefined ? null : httpsUrl(opts.attestOnly, "attestOnly: ").origin;
  const agent = createAttestedAgent(opts);
  const f = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = typeof input === "string" ? new URL(input) : input instanceof URL ? input : new URL(input.url);
    if (only !== null && url.origin !== only) return globalThis.fetch(input, init);
    refusePlaintext(url.protocol);
    return (await undiciFetch(input as never, { ...(init as object), dispatcher: agent } as never)) as unknown as Response;
  }) as AttestedFetch;
  f.agent = agent;
  f.close = () => agent.close();
  return f;
}

/** `given` as an https: URL, or a ConnectorError (`what` prefixes the message: which input). */
function httpsUrl(given: string | URL, what = ""): URL {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new ConnectorError("URL_INVALID", `${what}not a URL: ${String(given)}`);
  }
  refusePlaintext(url.protocol);
  return url;
}

/** One connection: appraisal and freshness; the verdict, ok or not. Throws only for network and usage errors. */
export async function verifyRemote(url: string | URL, opts: ConnectorOptions): Promise<ConnectionVerdict> {
  return (await verifyRemoteCertificate(url, opts)).verdict;
}

/** verifyRemote, and the DER of the very certificate the verdict judged (`verify --save-cert`). */
export async function verifyRemoteCertificate(url: string | URL, opts: ConnectorOptions): Promise<{ verdict: ConnectionVerdict; certificate: Uint8Array }> {
  const u = httpsUrl(url);
  const { socket, verdict, certificate } = await attestedSocket(targetOf({ hostname: u.hostname, host: u.host, port: u.port }), shared(opts, false));
  // A graceful close: an abrupt one (RST) can make the server drop our last handshake flight
  // unread, and it would log a failed handshake for a connection that verified.
  socket.on("error", () => {});
  socket.resume();
  socket.end();
  setTimeout(() => socket.destroy(), 2000).unref();
  report(opts, verdict);
  return { verdict, certificate };
}

/** The AttestationRejectedError in an error's cause chain (undici's fetch wraps it in TypeError "fetch failed"). */
export function rejectionOf(err: unknown): AttestationRejectedError | null {
  const seen = new Set<unknown>();
  for (let e = err; e !== null && e !== undefined && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    // A remote that stayed busy past the deadline failed no check: callers retry, never give up on it.
    if (e instanceof AttestationRejectedError) return e.verdict.freshness.busy ? null : e;
    seen.add(e);
    if (e instanceof AggregateError) for (const inner of e.errors) if (rejectionOf(inner)) return rejectionOf(inner);
  }
  return null;
}
