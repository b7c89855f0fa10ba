/**
 * Routing between one client and one child, without a transport: which request's stream a
 * message from the child goes on, what the child still owes, and the clock its silence is
 * judged by.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Routing } from "../../../../proxy/server/upstream/stdio/routing.js";

const request = (id: number | string, method = "tools/call", progressToken?: number | string) => ({
  jsonrpc: "2.0" as const,
  id,
  method,
  params: progressToken === undefined ? {} : { _meta: { progressToken } },
});
const progress = (progressToken: number | string) => ({ jsonrpc: "2.0" as const, method: "notifications/progress", params: { progressToken, progress: 1 } });
const result = (id: number | string) => ({ jsonrpc: "2.0" as const, id, result: {} });
const log = { jsonrpc: "2.0" as const, method: "notifications/message", params: { level: "info", data: "x" } };

test("progress goes on the stream of the request that carried its token; a response is the transport's to route", () => {
  const r = new Routing();
  assert.equal(r.toChild(request(1, "tools/call", "tok")), true);
  assert.equal(r.toChild(request(2)), true);
  assert.equal(r.waiting, 2);
  assert.equal(r.fromChild(progress("tok"), true), 1);
  assert.equal(r.fromChild(progress("tok"), false), 1);
  assert.equal(r.fromChild(result(1), false), undefined);
  assert.equal(r.waiting, 1);
  // Its request answered, a late progress for the token falls back like any other message.
  assert.equal(r.fromChild(progress("tok"), false), 2);
  assert.equal(r.fromChild(progress("tok"), true), undefined);
});

test("messages of no request: the standalone stream when open, else the newest open request's stream, else nowhere in particular", () => {
  const r = new Routing();
  assert.equal(r.fromChild(log, false), undefined);
  r.toChild(request("a"));
  r.toChild(request("b"));
  assert.equal(r.fromChild(log, true), undefined);
  assert.equal(r.fromChild(log, false), "b");
  assert.equal(r.fromChild(request(99, "sampling/createMessage"), false), "b", "a request to the client too");
});

test("a cancelled request is no longer owed; notifications and responses from the client are not requests", () => {
  const r = new Routing();
  r.toChild(request(1, "tools/call", 5));
  assert.equal(r.toChild({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } }), false);
  assert.equal(r.waiting, 0);
  assert.equal(r.fromChild(progress(5), false), undefined, "its token is forgotten with it");
  assert.equal(r.toChild({ jsonrpc: "2.0", method: "notifications/initialized" }), false);
  assert.equal(r.toChild(result(7)), false);
});

test("silence is counted from the first request owed; while the child waits on the client it is not silent", () => {
  const r = new Routing();
  r.fromChild(log, true, 100);
  r.toChild(request(1), 1_000);
  assert.equal(r.quietSince, 1_000, "not from an earlier message");
  r.toChild(request(2), 2_000);
  assert.equal(r.quietSince, 1_000, "a second request does not restart the clock");
  r.fromChild(request("s1", "sampling/createMessage"), true, 3_000);
  assert.equal(r.waitsOnClient, true);
  assert.equal(r.quietSince, 3_000);
  r.toChild(result("s1"), 9_000);
  assert.equal(r.waitsOnClient, false);
  assert.equal(r.quietSince, 9_000, "the child's turn again from the client's answer");
  assert.deepEqual(r.drain().sort(), [1, 2]);
  assert.equal(r.waiting, 0);
});
