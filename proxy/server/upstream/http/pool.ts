/**
 * The forwarder's connections to its upstream: one undici Client per connection, pooled here
 * rather than by undici's Pool. An exchange that is torn down must take its connection with it
 * (Client.destroy), because undici reconnects after an abort and would leave a never-used
 * connection open (nodejs/undici#5845); and per connection we know whether a request went out on
 * a reused one, which is what makes a retry safe.
 *
 * undici's own headers and body timeouts are off (0): the exchange's timers carry the documented
 * semantics, which undici's cannot express (the headers timeout runs from the end of the request
 * body; the idle timeout is refreshed by bytes in either direction, so a busy stream is never cut).
 * undici sets noDelay on every socket it opens.
 *
 * Loaded from undici's index, not from the two files used (which idles about 6 MB smaller): with
 * only those two loaded the forwarder spends more CPU per request. Measured with both builds serving
 * at once under identical wrk loads (-t2 -c32 -d6s, 1 KB, CPU from /proc/PID/stat), the two-file
 * build cost more in all 10 rounds (median +21 %, +3 % to +104 %); the same two files followed by
 * a require of the index cost what the index does, so the cost comes from something else the index
 * loads, not from how the Client is imported. Which part, and why, is not known (the bisection is
 * in docs/performance.md); per-request CPU is the scarcer of the two here, so the index stays.
 */
import { Client, buildConnector } from "undici";

/** An upstream connection: one undici Client, which holds at most one socket. */
export interface Slot {
  readonly client: Client;
  /** Responses completed on its current socket. */
  served: number;
  idle: boolean;
  gone: boolean;
}

export type UpstreamTarget = { kind: "http"; host: string; port: number } | { kind: "unix"; path: string };

/** host:port of a TCP target (an IPv6 address in brackets); UNIX-socket requests name localhost. */
export function authorityOf(target: UpstreamTarget): string {
  return target.kind === "http" ? `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}` : "localhost";
}

/** The target as messages and logs name it. */
export function describeTarget(target: UpstreamTarget): string {
  return target.kind === "http" ? `http://${authorityOf(target)}` : `unix:${target.path}`;
}

/** As node:http's Agent (maxFreeSockets). */
export const MAX_IDLE_CONNECTIONS = 256;

const ignore = (): void => {};

export class Pool {
  private readonly origin: string;
  private readonly connect: buildConnector.connector;
  /** Connections not in use, most recently used last (lifo: under light load the rest time out). */
  private readonly idle: Slot[] = [];
  private readonly all = new Set<Slot>();
  private closed = false;

  constructor(target: UpstreamTarget) {
    this.origin = `http://${authorityOf(target)}`;
    this.connect = buildConnector(target.kind === "unix" ? { socketPath: target.path } : {});
  }

  /** A connection for one exchange: the most recently released one, or a new one. */
  take(): Slot {
    const slot = this.idle.pop() ?? this.open();
    slot.idle = false;
    return slot;
  }

  /** Back to the pool after a complete exchange; past the idle cap, or once closed, it is discarded. */
  release(slot: Slot): void {
    if (slot.gone) return;
    if (this.closed || this.idle.length >= MAX_IDLE_CONNECTIONS) return this.discard(slot);
    slot.idle = true;
    this.idle.push(slot);
  }

  /** Ends the connection (whatever exchange is on it) and forgets it. */
  discard(slot: Slot): void {
    if (!slot.gone) void this.end(slot);
  }

  /** Ends every connection; resolves once their sockets are closed. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.all].map((slot) => this.end(slot)));
  }

  /** For a slot not gone yet (every slot in `all`). */
  private end(slot: Slot): Promise<void> {
    slot.gone = true;
    this.all.delete(slot);
    if (slot.idle) {
      slot.idle = false;
      const i = this.idle.lastIndexOf(slot);
      if (i >= 0) this.idle.splice(i, 1);
    }
    return slot.client.destroy().catch(ignore);
  }

  private open(): Slot {
    const slot: Slot = { client: new Client(this.origin, { connect: this.connect, headersTimeout: 0, bodyTimeout: 0, pipelining: 1 }), served: 0, idle: false, gone: false };
    slot.client.on("disconnect", () => {
      slot.served = 0;
      if (slot.idle) this.discard(slot);
    });
    this.all.add(slot);
    return slot;
  }
}
