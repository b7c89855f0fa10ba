/**
 * One request/response exchange through the pool: the client's body streamed up behind the body
 * limit, the answer streamed down with backpressure, two timers, one retry, and every way it can
 * end mapped to a status and an outcome.
 *
 * Timers: no byte either way for `idleTimeoutMs` ends the exchange (→ 504 or 408 before the
 * response head, a destroyed response after it); bytes from the upstream (a 1xx, the head, the
 * body) and from the client refresh it, so an upstream that never answers is cut at
 * `idleTimeoutMs` after the request was sent. `headersTimeoutMs`, only when configured, also
 * bounds the wait for the head from the end of the request body (→ 504): by default there is
 * none, because a 2026-07-28 server sends its head with the result of a call that may be quiet
 * for minutes. Neither caps a stream's life.
 * When the client leaves, the upstream exchange is destroyed at once (so the upstream sees its
 * stream end and a reconnecting MCP client gets no 409); when the upstream dies mid-response, the
 * client's response is destroyed too (never a truncated body that looks complete).
 *
 * Per request: one Exchange, one Attempt (undici's handler) per attempt, and only the listeners
 * the request needs; the timers call shared functions with the exchange as their argument.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import { requestHeaders, relayableReason, responseHeaders, type Headers } from "./headers.js";
import { INVALID_REQUEST_MESSAGE, failureMessage, headersTimeoutMessage, isInvalidRequest, isUpstreamFailure, sendError, upstreamCode, upstreamFailure, type Outcome } from "./failure.js";
import type { Pool, Slot } from "./pool.js";
import { BodyStandIn, bodyModeOf, declaredLength, type BodyMode } from "./body.js";
import type { ForwarderContext } from "./context.js";

/** What every exchange of one forwarder shares; `closed` and `open` are the forwarder's live state. */
export interface ExchangeContext extends ForwarderContext {
  readonly pool: Pool;
  readonly bodyLimit: number;
}

/** Client errors surface through the response's 'close'; one shared listener, not one per request. */
const ignore = (): void => {};

const pathOf = (req: IncomingMessage): string | undefined => (req.url ?? "/").split("?", 1)[0];

/** Forwards one request; answers it itself when it cannot go upstream. */
export function exchange(ctx: ExchangeContext, req: IncomingMessage, res: ServerResponse): void {
  const t0 = performance.now();
  req.on("error", ignore);
  if (ctx.closed) {
    req.resume();
    sendError(res, 503, "proxy is shutting down", true);
    return;
  }
  const declared = declaredLength(req);
  if (declared !== undefined && declared > ctx.bodyLimit) {
    // Answered before the upstream is contacted; the connection closes after the answer.
    req.resume();
    sendError(res, 413, `request body of ${declared} bytes exceeds the limit of ${ctx.bodyLimit} bytes`, true);
    ctx.log.debug({ method: req.method ?? "GET", path: pathOf(req), status: 413, ms: Math.round(performance.now() - t0), outcome: "body-limit" }, "forward");
    return;
  }
  let headers: Headers;
  try {
    headers = requestHeaders(req, false, ctx.rules);
  } catch {
    req.resume();
    sendError(res, 500, "could not build the upstream request headers");
    return;
  }
  new Exchange(ctx, req, res, t0, headers, bodyModeOf(req, declared)).start();
}

class Exchange {
  readonly method: string;
  readonly body: BodyStandIn | null;
  /** A gathered body's chunks until the client's body ends; then `payload` holds them as one. */
  readonly gathered: Buffer[] | null;
  payload: Buffer | null = null;
  readonly hasBody: boolean;
  /** The upstream connection of the current attempt. */
  slot: Slot | undefined;
  /** Whether the current attempt went out on a connection that had already served a response. */
  reused = false;
  /** Bumped per attempt, so that a late callback of an abandoned attempt is ignored. */
  attempt = 0;
  responding = false;
  /** Set once the exchange ended abnormally (or was torn down): later events are ignored. */
  settled = false;
  outcome: Outcome = "ok";
  requestDone = false;
  bytesIn = 0;
  bytesOut = 0;
  sse = false;
  headersTimer: NodeJS.Timeout | undefined;
  readonly idle: NodeJS.Timeout;

  constructor(
    readonly ctx: ExchangeContext,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly t0: number,
    readonly headers: Headers,
    mode: BodyMode,
  ) {
    this.method = req.method ?? "GET";
    this.hasBody = mode !== "none";
    this.body = mode === "stream" ? new BodyStandIn(req) : null;
    this.gathered = mode === "gather" ? [] : null;
    this.idle = setTimeout(idleTimedOut, ctx.idleTimeoutMs, this);
    this.idle.unref();
  }

  start(): void {
    const { req, res, body } = this;
    this.ctx.open.add(this);
    res.once("close", () => this.closed());
    if (this.gathered) {
      req.on("data", (chunk: Buffer) => this.gatherChunk(chunk));
      req.on("end", () => {
        if (this.settled) return;
        this.payload = Buffer.concat(this.gathered!);
        this.dispatch();
        if (!this.settled) this.startHeadersTimer();
      });
      return;
    }
    this.dispatch();
    if (this.settled) return;
    if (body) {
      // undici may be done with the body early (the upstream answered before reading all of it):
      // the rest of the client's body then drains, so that its connection can carry the next request.
      body.on("close", () => req.resume());
      req.on("data", (chunk: Buffer) => this.bodyChunk(chunk));
      req.on("end", () => {
        if (this.settled) return;
        body.push(null);
        this.startHeadersTimer();
      });
    } else {
      req.resume();
      this.startHeadersTimer();
    }
  }

  /** One attempt on a connection from the pool. */
  dispatch(): void {
    const attempt = new Attempt(this, ++this.attempt, (this.slot = this.ctx.pool.take()));
    attempt.slot.client.dispatch({ path: this.req.url ?? "/", method: this.method as Dispatcher.HttpMethod, headers: this.headers, body: this.body ?? this.payload }, attempt);
  }

  gatherChunk(chunk: Buffer): void {
    if (this.settled) return;
    this.idle.refresh();
    this.bytesIn += chunk.length;
    if (this.bytesIn > this.ctx.bodyLimit) return this.overLimit();
    this.gathered!.push(chunk);
  }

  bodyChunk(chunk: Buffer): void {
    const body = this.body!;
    if (this.settled || body.destroyed) return;
    this.idle.refresh();
    this.bytesIn += chunk.length;
    // Checked before passing it on: no byte past the limit goes upstream.
    if (this.bytesIn > this.ctx.bodyLimit) return this.overLimit();
    if (!body.push(chunk)) this.req.pause();
  }

  overLimit(): void {
    this.settled = true;
    this.outcome = "body-limit";
    this.tearDownUpstream();
    this.req.removeAllListeners("data");
    this.req.resume(); // discard the rest; the connection closes after the answer
    sendError(this.res, 413, `request body exceeds the limit of ${this.ctx.bodyLimit} bytes`, true);
  }

  startHeadersTimer(): void {
    this.requestDone = true;
    if (this.responding || this.settled || this.ctx.headersTimeoutMs === null) return;
    this.headersTimer = setTimeout(headersTimedOut, this.ctx.headersTimeoutMs, this);
    this.headersTimer.unref();
  }

  /** A failure before any response byte: answered 502, the rest of the client's body drained. */
  failed(outcome: "invalid" | "connect" | "reset", message: string): void {
    this.settled = true;
    clearTimeout(this.headersTimer);
    // The body stand-in is no longer read: let the rest of the client's body drain.
    this.req.resume();
    this.outcome = outcome;
    if (outcome !== "invalid") this.ctx.hooks.upstreamError(outcome);
    sendError(this.res, 502, message);
  }

  /** Ends the upstream exchange with its connection, so that the upstream sees it end. */
  tearDownUpstream(): void {
    clearTimeout(this.headersTimer);
    if (this.slot) this.ctx.pool.discard(this.slot);
  }

  /** The forwarder is closing. */
  teardown(): void {
    if (this.settled) return;
    this.settled = true;
    this.outcome = "closed";
    this.tearDownUpstream();
    this.res.destroy();
  }

  /** The client's response closed: finished, or the client went away. */
  closed(): void {
    const { ctx, res } = this;
    clearTimeout(this.idle);
    clearTimeout(this.headersTimer);
    ctx.open.delete(this);
    if (!res.writableFinished && !this.settled) {
      // The client went away: end the upstream exchange now, so the upstream sees its stream end.
      this.settled = true;
      this.outcome = "client-closed";
      this.tearDownUpstream();
    }
    if (this.sse) ctx.hooks.streamClosed("sse");
    const failed = isUpstreamFailure(this.outcome);
    // The line is built only when it will be written: this runs once per request.
    if (!ctx.log.isLevelEnabled(failed ? "warn" : "debug")) return;
    const line = {
      method: this.method,
      path: pathOf(this.req),
      status: res.headersSent ? res.statusCode : undefined,
      ms: Math.round(performance.now() - this.t0),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      outcome: this.outcome,
      ...(this.sse ? { sse: this.sse } : {}),
    };
    if (failed) ctx.log.warn(line, "forward failed");
    else ctx.log.debug(line, "forward");
  }
}

function headersTimedOut(x: Exchange): void {
  if (x.responding || x.settled) return;
  x.settled = true;
  x.outcome = "timeout";
  x.ctx.hooks.upstreamError("timeout");
  x.tearDownUpstream();
  sendError(x.res, 504, headersTimeoutMessage(x.ctx.describe, x.ctx.headersTimeoutMs ?? 0));
}

function idleTimedOut(x: Exchange): void {
  const { ctx, res } = x;
  if (x.settled || res.writableFinished) return;
  x.settled = true;
  if (!x.responding && x.requestDone) {
    x.outcome = "timeout";
    ctx.hooks.upstreamError("timeout");
    x.tearDownUpstream();
    sendError(res, 504, `upstream ${ctx.describe} sent no data for ${ctx.idleTimeoutMs} ms`, true);
  } else if (!x.responding) {
    x.outcome = "idle";
    x.tearDownUpstream();
    sendError(res, 408, `request body stalled: no data for ${ctx.idleTimeoutMs} ms`, true);
  } else {
    x.outcome = "idle";
    x.tearDownUpstream();
    res.destroy();
  }
}

/** undici's handler for one attempt: the response streamed to the client, errors mapped, one retry. */
class Attempt implements Dispatcher.DispatchHandler {
  private resume: (() => void) | undefined;
  private onDrain: (() => void) | undefined;

  constructor(
    private readonly x: Exchange,
    private readonly n: number,
    readonly slot: Slot,
  ) {}

  private current(): boolean {
    return !this.x.settled && this.n === this.x.attempt;
  }

  onConnect(abort: (err?: Error) => void): void {
    if (!this.current()) return abort();
    this.x.reused = this.slot.served > 0;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const { x } = this;
    if (!this.current()) return false;
    // The upstream is alive: a head (an interim one too) is bytes from it, as a body chunk is.
    x.idle.refresh();
    // 1xx: the final answer follows on the same exchange.
    if (status < 200) return true;
    clearTimeout(x.headersTimer);
    x.responding = true;
    this.resume = resume;
    const out = responseHeaders(raw, x);
    try {
      const reason = relayableReason(statusText);
      if (reason) x.res.writeHead(status, reason, out);
      else x.res.writeHead(status, out);
    } catch {
      x.settled = true;
      x.outcome = "reset";
      x.ctx.hooks.upstreamError("reset");
      x.tearDownUpstream();
      sendError(x.res, 502, `upstream ${x.ctx.describe} sent an invalid response head`);
      return false;
    }
    if (x.sse) {
      x.ctx.hooks.streamOpened("sse");
      x.res.socket?.setNoDelay(true);
      x.res.flushHeaders();
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    const { x } = this;
    if (x.settled) return false;
    x.bytesOut += chunk.length;
    x.idle.refresh();
    if (x.res.write(chunk)) return true;
    x.res.once("drain", (this.onDrain ??= () => this.resume?.()));
    return false;
  }

  onComplete(): void {
    const { x } = this;
    if (x.settled) return;
    this.slot.served++;
    // The connection is the pool's again (another exchange may take it at once): a client that
    // leaves before this answer is flushed must not tear it down.
    x.slot = undefined;
    x.ctx.pool.release(this.slot);
    x.res.end();
  }

  onError(err: Error): void {
    const { x } = this;
    if (!this.current()) return;
    x.ctx.pool.discard(this.slot);
    if (x.responding) {
      // After the response head, a dead connection is a reset: the client must see an abort, not a clean end.
      x.settled = true;
      x.outcome = "reset";
      x.ctx.hooks.upstreamError("reset");
      x.res.destroy();
      return;
    }
    const code = upstreamCode(err);
    // A kept-alive connection the upstream closed meanwhile: safe to retry once when nothing was streamed.
    if (!x.hasBody && this.n === 1 && code === "ECONNRESET" && x.reused) {
      clearTimeout(x.headersTimer);
      x.dispatch();
      if (!x.settled) x.startHeadersTimer();
      return;
    }
    if (isInvalidRequest(code)) return x.failed("invalid", INVALID_REQUEST_MESSAGE);
    const kind = upstreamFailure(code);
    x.failed(kind, failureMessage(kind, x.ctx.describe, code));
  }
}
