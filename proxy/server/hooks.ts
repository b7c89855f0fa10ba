/**
 * What the request path reports to metrics. The server wires these to prom-client; components
 * (forwarder, stdio sessions) only call them, so they stay testable without a registry.
 */
export interface ProxyHooks {
  /** An upstream failure: "connect" (refused/unreachable), "timeout" (no headers in time), "reset" (died mid-response), "child-exit" (stdio child ended). */
  upstreamError(kind: "connect" | "timeout" | "reset" | "child-exit"): void;
  /** A long-lived response stream (SSE, WebSocket) opened / closed. */
  streamOpened(kind: "sse" | "websocket"): void;
  streamClosed(kind: "sse" | "websocket"): void;
  /** A stdio session ended to make room for another (the least recently used idle one). */
  sessionEvicted?(): void;
  /** A stdio session refused: past the client's share ("client") or the cap ("global"), none idle. */
  sessionRefused?(scope: "client" | "global"): void;
}

export const noHooks: ProxyHooks = {
  upstreamError: () => {},
  streamOpened: () => {},
  streamClosed: () => {},
};
