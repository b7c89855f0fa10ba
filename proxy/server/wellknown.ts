/**
 * /.well-known/attestation: fresh evidence on demand, served by the proxy, never forwarded.
 *
 * GET  ?nonce=HEX (1–64 bytes): the request's leaf is over CBOR {nonce}.
 * POST {"nonce": HEX}: the leaf is over CBOR {nonce, tls-exporter}, the exporter being
 *      exportKeyingMaterial(32, "EXPORTER-attestable-mcp", nonce) of this connection, which only
 *      its two ends know: the evidence cannot be relayed to, or replayed on, another connection.
 * Requests are batched (server/evidence-batch.ts): one quote's claims are {pubkey-hash,
 * batch-root}, its report data SHA-256(claims) ‖ 0³², and each answer adds the request's own
 * inclusion proof, so a client learns sibling hashes only, never another connection's nonce or
 * exporter. The pubkey-hash is of the certificate this very connection was served (after a
 * rotation, older connections keep theirs), and the answer names that certificate by its SHA-256.
 * Quotes are budgeted per client before the process's cap (server/shares.ts), counted per quote
 * a client's requests take part in; a request whose client's next token is near waits for it, one
 * whose client is past its share gets 429, everyone past the cap 503, both with an honest
 * Retry-After, so one client cannot spend another's evidence. An identical request
 * on the same connection is answered from a per-connection cache and spends nothing.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type { AttestationProvider } from "../attest/provider.js";
import { createHash } from "node:crypto";
import { ATTESTATION_PATH, EXPORTER_BYTES, EXPORTER_LABEL, NONCE_PARAM, evidenceHead, evidenceTail } from "../core/protocol.js";
import { equalBytes } from "../core/bytes.js";
import { evidenceLeaf } from "../evidence/merkle.js";
import { EvidenceBatcher } from "./evidence-batch.js";
import { RateShares, clientOfAddress } from "./shares.js";

export { ATTESTATION_PATH, EXPORTER_LABEL };
const MAX_BODY = 1024;

export interface AttestationEndpointOptions {
  provider: AttestationProvider;
  /** The process's cap (503 past it). */
  quotesPerMinute: number;
  /** Each client's share (429 past it); default: the cap. */
  quotesPerClientPerMinute?: number;
  /** Who asks (default: the connection's address, an IPv6 one by its /64). */
  clientOf?: (req: IncomingMessage) => string;
  /** Called for each request refused by a share ("client") or the cap ("global"). */
  onRefused?: (scope: "client" | "global") => void;
  log: Logger;
  /** Called after each fresh quote (metrics): its duration and how many requests it covered. */
  onQuote?: (seconds: number, leaves: number) => void;
  /** Requests one quote covers at most (default and most: BATCH_MAX). */
  maxBatch?: number;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A served certificate: its DER, and the SHA-256 of it an answer names it by. */
interface Served {
  der: Buffer;
  sha256: Uint8Array;
}

/** The DER of the certificate a connection was served (after a rotation, older connections keep theirs). */
function servedDer(socket: TLSSocket): Buffer | undefined {
  const local = typeof socket.getCertificate === "function" ? socket.getCertificate() : null;
  return local && "raw" in local ? (local.raw as Buffer | undefined) : undefined;
}

function nonceFrom(hex: unknown): Uint8Array | string {
  if (typeof hex !== "string" || !/^(?:[0-9a-fA-F]{2}){1,64}$/.test(hex)) return "nonce must be 1 to 64 bytes of hex";
  return new Uint8Array(Buffer.from(hex, "hex"));
}

export function createAttestationEndpoint(opts: AttestationEndpointOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const shares = new RateShares(opts.quotesPerMinute, opts.quotesPerClientPerMinute ?? opts.quotesPerMinute);
  const batcher = new EvidenceBatcher({
    provider: opts.provider,
    shares,
    ...(opts.maxBatch ? { maxBatch: opts.maxBatch } : {}),
    ...(opts.onQuote ? { onQuote: opts.onQuote } : {}),
  });
  const clientOf = opts.clientOf ?? ((req: IncomingMessage) => clientOfAddress(req.socket.remoteAddress));
  const cache = new WeakMap<object, Map<string, Buffer>>();
  // All answers of one batch share their quote, claims and certificate: the body up to the
  // proof is encoded once per batch, not once per answer.
  let headOf: { quote: Uint8Array; claims: Uint8Array; certificateSha256: Uint8Array; head: Buffer } | null = null;
  const headFor = (quote: Uint8Array, claims: Uint8Array, certificateSha256: Uint8Array): Buffer => {
    if (!headOf || headOf.quote !== quote || headOf.claims !== claims || !equalBytes(headOf.certificateSha256, certificateSha256)) {
      headOf = { quote, claims, certificateSha256, head: Buffer.from(evidenceHead({ quote, claims, certificateSha256 })) };
    }
    return headOf.head;
  };

  // The hash is kept for the last certificate seen, which is every connection's until a rotation.
  let lastServed: Served | null = null;
  const servedCertificate = (socket: TLSSocket): Served | undefined => {
    const der = servedDer(socket);
    if (!der) return undefined;
    if (!lastServed || !der.equals(lastServed.der)) lastServed = { der, sha256: new Uint8Array(createHash("sha256").update(der).digest()) };
    return lastServed;
  };

  const answer = async (req: IncomingMessage, res: ServerResponse, nonce: Uint8Array, exporter: boolean): Promise<void> => {
    const socket = req.socket as TLSSocket;
    const served = servedCertificate(socket);
    if (!served) {
      send(res, 500, { error: "this connection has no TLS certificate to attest" });
      return;
    }
    const key = `${exporter ? "x" : "n"}:${Buffer.from(nonce).toString("hex")}`;
    const seen = cache.get(socket)?.get(key);
    if (seen) {
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store", "Content-Length": seen.length });
      res.end(seen);
      return;
    }
    const exported = exporter ? new Uint8Array(socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, Buffer.from(nonce))) : null;
    const granted = await batcher.join(served.der, evidenceLeaf(nonce, exported), clientOf(req));
    if (!granted.ok) {
      opts.onRefused?.(granted.scope);
      const error = granted.full
        ? `too many requests already wait for fresh quotes: retry after ${granted.retryAfter} s`
        : granted.scope === "client"
          ? `fresh quotes are rate-limited to ${opts.quotesPerClientPerMinute ?? opts.quotesPerMinute} per minute per client, and this client's share is spent: retry after ${granted.retryAfter} s`
          : `fresh quotes are rate-limited to ${opts.quotesPerMinute} per minute for all clients, and none is left: retry after ${granted.retryAfter} s`;
      send(res, granted.status, { error }, { "Retry-After": String(granted.retryAfter) });
      return;
    }
    const { quote, claims, proof } = granted;
    const body = Buffer.concat([headFor(quote, claims, served.sha256), Buffer.from(evidenceTail(proof, opts.provider.dev))]);
    let perSocket = cache.get(socket);
    if (!perSocket) cache.set(socket, (perSocket = new Map()));
    if (perSocket.size >= 16) perSocket.clear();
    perSocket.set(key, body);
    // A length, not chunks: the client connector reads this on the connection it then hands to
    // its HTTP client, and must consume exactly the response.
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store", "Content-Length": body.length });
    res.end(body);
  };

  return (req, res) => {
    const fail = (e: unknown) => {
      opts.log.error({ err: (e as Error).message }, "attestation endpoint: quote failed");
      if (!res.headersSent) send(res, 503, { error: "evidence is unavailable right now" });
      else res.destroy();
    };
    if (req.method === "GET") {
      const nonce = nonceFrom(new URL(req.url ?? "/", "https://x").searchParams.get(NONCE_PARAM));
      if (typeof nonce === "string") return send(res, 400, { error: nonce });
      answer(req, res, nonce, false).catch(fail);
      return;
    }
    if (req.method === "POST") {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          send(res, 413, { error: `body over ${MAX_BODY} bytes` });
          req.destroy();
        } else chunks.push(c);
      });
      req.on("end", () => {
        if (res.headersSent) return;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          return send(res, 400, { error: 'body must be JSON {"nonce": HEX}' });
        }
        const nonce = nonceFrom((body as Record<string, unknown> | null)?.[NONCE_PARAM]);
        if (typeof nonce === "string") return send(res, 400, { error: nonce });
        answer(req, res, nonce, true).catch(fail);
      });
      return;
    }
    send(res, 405, { error: 'use GET ?nonce=HEX or POST {"nonce": HEX}' }, { Allow: "GET, POST" });
  };
}
