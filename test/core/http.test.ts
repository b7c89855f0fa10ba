/**
 * The hop-by-hop rules shared by the server's forwarder and the client's bridge: the fixed set,
 * the names a Connection header adds, and the same answer from raw header pairs and from parsed
 * header objects.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HOP_BY_HOP, NO_TOKENS, addConnectionTokens, connectionTokens, connectionTokensOf, isHopByHop } from "../../proxy/core/http.js";

describe("core/http: hop-by-hop headers", () => {
  it("the fixed set is RFC 9110's plus the usual non-standard ones, in lower case", () => {
    assert.deepEqual([...HOP_BY_HOP].sort(), ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]);
    for (const name of HOP_BY_HOP) assert.ok(isHopByHop(name, NO_TOKENS), name);
    for (const name of ["content-type", "mcp-session-id", "authorization", "last-event-id", "x-forwarded-for"]) assert.equal(isHopByHop(name, NO_TOKENS), false, name);
  });

  it("a Connection header makes the names it lists hop-by-hop for that message (trimmed, any case, empty tokens ignored)", () => {
    const raw = ["Host", "a", "CONNECTION", " X-Private ,, Keep-Alive", "connection", "x-other", "X-Private", "1"];
    const named = connectionTokens(raw);
    assert.deepEqual([...named].sort(), ["keep-alive", "x-other", "x-private"]);
    assert.ok(isHopByHop("x-private", named));
    assert.ok(isHopByHop("x-other", named));
    assert.equal(isHopByHop("host", named), false);
  });

  it("no Connection header: the shared empty set, nothing allocated", () => {
    assert.equal(connectionTokens(["Content-Type", "text/plain", "Connectionx", "x-a"]), NO_TOKENS);
    assert.equal(connectionTokens([]), NO_TOKENS);
    assert.equal(connectionTokensOf({}), NO_TOKENS);
    assert.equal(connectionTokensOf({ connection: " , " }), NO_TOKENS);
    assert.equal(addConnectionTokens(" ,", undefined), undefined);
  });

  it("parsed headers (a joined or repeated Connection) give the same names as the raw pairs", () => {
    const raw = ["Connection", "close, X-A", "Connection", "x-b"];
    assert.deepEqual([...connectionTokensOf({ connection: "close, X-A, x-b" })].sort(), [...connectionTokens(raw)].sort());
    assert.deepEqual([...connectionTokensOf({ connection: ["close, X-A", "x-b"] })].sort(), ["close", "x-a", "x-b"]);
  });

  it("addConnectionTokens adds to the set it is given", () => {
    const into = new Set(["x-a"]);
    assert.equal(addConnectionTokens("X-B", into), into);
    assert.deepEqual([...into], ["x-a", "x-b"]);
  });
});
