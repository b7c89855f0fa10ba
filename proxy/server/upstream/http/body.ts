/**
 * How a forwarded request's body goes upstream: none, streamed behind a stand-in, or gathered
 * first when it is small. The exchange (exchange.ts) drives either; the choice and the stand-in
 * are here.
 */
import { Readable } from "node:stream";
import type { IncomingMessage } from "node:http";

/**
 * A body declared at most this long is gathered before the request goes upstream: a client that
 * stalls or leaves mid-body then never reaches the upstream (it is answered 408 or dropped here),
 * the body leaves in one write with its head however the client's bytes were split, and no
 * stream is made for it. A stream's own buffer holds as much, so no more memory is held.
 */
export const GATHERED_BODY_MAX = 16 * 1024;

/** How a request's body goes upstream: none, streamed chunk by chunk, or gathered into one buffer. */
export type BodyMode = "none" | "stream" | "gather";

export function declaredLength(req: IncomingMessage): number | undefined {
  const v = req.headers["content-length"];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** The body's way upstream, from its head: `declared` is its Content-Length, when valid. */
export function bodyModeOf(req: IncomingMessage, declared: number | undefined): BodyMode {
  if (req.headers["transfer-encoding"] !== undefined) return "stream";
  if ((declared ?? 0) === 0) return "none";
  return declared! <= GATHERED_BODY_MAX ? "gather" : "stream";
}

/**
 * undici destroys the body it is given when the exchange ends; this stand-in keeps that away from
 * the client's socket (a 413 or 502 must still be sent), and the limit check sits in front of it,
 * so that no byte past the limit goes upstream.
 */
export class BodyStandIn extends Readable {
  readonly #source: IncomingMessage;

  constructor(source: IncomingMessage) {
    super();
    this.#source = source;
  }

  override _read(): void {
    this.#source.resume();
  }
}
