/**
 * The forwarder's header rules one by one, without sockets: what goes upstream (Host first,
 * hop-by-hop and client-sent forwarding or verdict headers gone, ours appended), what comes back
 * (hop-by-hop gone, duplicates and case kept, SSE recognised), and reason phrases.
 */
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import {
  UPGRADE_KEEP,
  clientAddress,
  endToEnd,
  isAttestedClientHeader,
  isEventStream,
  isExpect,
  isForwardingHeader,
  relayableReason,
  requestHeaders,
  responseHead,
  responseHeaders,
  type HeaderRules,
} from "../../../../proxy/server/upstream/http/headers.js";

function fakeRequest(rawHeaders: string[], remoteAddress = "127.0.0.1"): IncomingMessage {
  return { rawHeaders, socket: { remoteAddress } } as unknown as IncomingMessage;
}

const rules = (over: Partial<HeaderRules> = {}): HeaderRules => ({ hostHeader: undefined, defaultHost: "127.0.0.1:9000", attestedHeaders: undefined, ...over });

describe("forwarder headers: request", () => {
  it("Host leads (the configured one, else the client's, else the target's); the client's Host becomes X-Forwarded-Host", () => {
    const req = fakeRequest(["Accept", "*/*", "host", "proxy.example:8443"]);
    assert.deepEqual(requestHeaders(req, false, rules()).slice(0, 2), ["Host", "proxy.example:8443"]);
    assert.deepEqual(requestHeaders(req, false, rules()).slice(-2), ["Accept", "*/*"]);
    assert.deepEqual(requestHeaders(req, false, rules({ hostHeader: "inner.local" })).slice(0, 2), ["Host", "inner.local"]);
    assert.deepEqual(requestHeaders(fakeRequest(["Accept", "*/*"]), false, rules()).slice(0, 2), ["Host", "127.0.0.1:9000"]);
    const out = requestHeaders(req, false, rules());
    assert.equal(out[out.indexOf("X-Forwarded-Host") + 1], "proxy.example:8443");
    assert.equal(requestHeaders(fakeRequest(["Accept", "*/*"]), false, rules()).includes("X-Forwarded-Host"), false);
  });

  it("hop-by-hop, Connection-named, forwarding, client-sent verdict and Expect headers are dropped; the rest keeps order, case and duplicates", () => {
    const req = fakeRequest([
      "Host",
      "h",
      "Connection",
      "keep-alive, X-Hop",
      "Keep-Alive",
      "timeout=5",
      "X-Hop",
      "1",
      "Transfer-Encoding",
      "chunked",
      "X-Forwarded-For",
      "6.6.6.6",
      "x-forwarded-proto",
      "http",
      "Forwarded",
      "for=6.6.6.6",
      "X-Attested-Client-Verdict",
      "trusted",
      "x_attested_client_verdict",
      "forged: CGI and WSGI read it as the listener's",
      "X-Authenticated_Subject",
      "forged",
      "Expect",
      "100-continue",
      "Mcp-Session-Id",
      "s1",
      "Cookie",
      "a=1",
      "Cookie",
      "b=2",
      "Upgrade",
      "websocket",
    ]);
    assert.deepEqual(requestHeaders(req, false, rules()), [
      "Host",
      "h",
      "X-Forwarded-For",
      "127.0.0.1",
      "X-Forwarded-Proto",
      "https",
      "X-Forwarded-Host",
      "h",
      "Mcp-Session-Id",
      "s1",
      "Cookie",
      "a=1",
      "Cookie",
      "b=2",
    ]);
  });

  it("an upgrade names its protocol again; the listener's verdict headers come first, after Host", () => {
    const req = fakeRequest(["Host", "h", "Connection", "Upgrade", "Upgrade", "websocket", "X-Attested-Client-Verdict", "forged"], "::ffff:10.0.0.7");
    const out = requestHeaders(req, true, rules({ attestedHeaders: () => ({ "X-Attested-Client-Verdict": "trusted" }) }));
    assert.deepEqual(out, [
      "Host",
      "h",
      "X-Attested-Client-Verdict",
      "trusted",
      "X-Forwarded-For",
      "10.0.0.7",
      "X-Forwarded-Proto",
      "https",
      "X-Forwarded-Host",
      "h",
      "Connection",
      "Upgrade",
      "Upgrade",
      "websocket",
    ]);
    // Not an upgrade request: neither is passed on.
    assert.equal(requestHeaders(req, false, rules()).includes("Upgrade"), false);
  });

  it("each rule on its own", () => {
    assert.ok(isForwardingHeader("x-forwarded-for") && isForwardingHeader("forwarded") && !isForwardingHeader("x-forward"));
    assert.ok(isAttestedClientHeader("x-attested-client-mrenclave") && !isAttestedClientHeader("x-attested-server"));
    for (const n of ["x_attested_client_verdict", "x-attested_client-mrsigner", "x-authenticated-subject", "x_authenticated_subject"]) assert.ok(isAttestedClientHeader(n), n);
    assert.ok(isExpect("expect") && !isExpect("expect-ct"));
    assert.equal(clientAddress(fakeRequest([], "::ffff:192.0.2.1")), "192.0.2.1");
    assert.equal(clientAddress(fakeRequest([], "::1")), "::1");
    assert.equal(clientAddress(fakeRequest([], "::ffff:abcd")), "::ffff:abcd");
  });
});

describe("forwarder headers: response", () => {
  const latin1 = (pairs: string[]): Buffer[] => pairs.map((s) => Buffer.from(s, "latin1"));

  it("hop-by-hop and Connection-named headers go; Set-Cookie duplicates, case and latin1 values stay", () => {
    const head = { sse: true };
    const out = responseHeaders(
      latin1(["Content-Type", "application/json", "Connection", "keep-alive, X-Hop", "X-Hop", "1", "Set-Cookie", "a=1", "set-cookie", "b=2", "Transfer-Encoding", "chunked", "X-Name", "caf\u00e9"]),
      head,
    );
    assert.deepEqual(out, ["Content-Type", "application/json", "Set-Cookie", "a=1", "set-cookie", "b=2", "X-Name", "caf\u00e9"]);
    assert.equal(head.sse, false);
  });

  it("an event stream is recognised from the first Content-Type, in any case", () => {
    const head = { sse: false };
    responseHeaders(latin1(["content-type", " Text/Event-Stream; charset=utf-8", "Content-Type", "application/json"]), head);
    assert.equal(head.sse, true);
    assert.equal(isEventStream("application/json"), false);
    assert.equal(isEventStream(""), false);
  });

  it("endToEnd keeps what it is told to keep (an upgrade's Connection and Upgrade)", () => {
    const raw = ["Connection", "Upgrade", "Upgrade", "websocket", "Keep-Alive", "x", "Sec-WebSocket-Accept", "k"];
    assert.deepEqual(endToEnd(raw, UPGRADE_KEEP), ["Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Accept", "k"]);
    assert.deepEqual(endToEnd(raw), ["Sec-WebSocket-Accept", "k"]);
  });

  it("a reason phrase is relayed only when it is one (HTAB, SP, VCHAR); a raw head falls back to the standard one", () => {
    assert.equal(relayableReason("Switching Protocols"), "Switching Protocols");
    assert.equal(relayableReason("Bad\r\nInjected: 1"), undefined);
    assert.equal(relayableReason(""), undefined);
    assert.equal(relayableReason(undefined), undefined);
    assert.equal(responseHead(101, "Bad\nX", ["Upgrade", "websocket"]), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    assert.equal(responseHead(200, "Fine", []), "HTTP/1.1 200 Fine\r\n\r\n");
    assert.equal(responseHead(599, undefined, []), "HTTP/1.1 599 \r\n\r\n");
  });
});
