/**
 * What the listener asks of an upstream, whatever its kind: the listener owns TLS, routing of
 * the proxy's own paths, metrics and logs; an upstream owns everything past that point. Both
 * kinds (http/: a byte-faithful relay; stdio/: the proxy as MCP server of record) implement it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

export interface Upstream {
  /** Answers one request; a path the upstream does not serve is answered 404 by the upstream itself. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** An Upgrade request (WebSocket); an upstream that has none refuses it on the socket. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends what is open (exchanges, tunnels, sessions, children) within the upstream's own bound. */
  close(): Promise<void>;
}
