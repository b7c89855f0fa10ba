/**
 * The bridge between Node's request and response and web-standard ones, over a real HTTP server:
 * a complete body sent whole with its length, an event stream flushed at once and cancelled when
 * the client leaves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { isEventStream, webRequest, writeResponse } from "../../../../proxy/server/upstream/stdio/web.js";
import { waitFor, within } from "../../../support/wait.js";
import { startUpstream } from "../../../support/upstream.js";

test("writeResponse: a complete body goes out whole with its length; no body stays empty; webRequest carries method and headers", async () => {
  const seen: Request[] = [];
  const s = await startUpstream((req, res) => {
    const request = webRequest(req, res);
    seen.push(request);
    const response = req.url === "/empty" ? new Response(null, { status: 202 }) : new Response('{"ok":true}', { status: 200, headers: { "Content-Type": "application/json", "Mcp-Session-Id": "s1" } });
    void writeResponse(res, response);
  });
  try {
    const r = await fetch(`${s.base}/json?q=1`, { method: "DELETE", headers: { "mcp-session-id": "abc", accept: "application/json" } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-length"), "11");
    assert.equal(r.headers.get("mcp-session-id"), "s1");
    assert.deepEqual(await r.json(), { ok: true });
    assert.equal(seen[0]!.method, "DELETE");
    assert.equal(seen[0]!.headers.get("mcp-session-id"), "abc");
    assert.equal(new URL(seen[0]!.url).pathname + new URL(seen[0]!.url).search, "/json?q=1");
    assert.equal(seen[0]!.signal.aborted, false, "a completed exchange is not aborted");

    const empty = await fetch(`${s.base}/empty`, { method: "POST" });
    assert.equal(empty.status, 202);
    assert.equal(await empty.text(), "");
  } finally {
    await s.close();
  }
});

test("writeResponse: an event stream's head goes out before its first event; the client leaving cancels it and aborts the request", async () => {
  let cancelled = false;
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  let request: Request | undefined;
  let done: Promise<void> | undefined;
  const s = await startUpstream((req, res) => {
    request = webRequest(req, res);
    const body = new ReadableStream<Uint8Array>({
      start: (c) => void (controller = c),
      cancel: () => void (cancelled = true),
    });
    const response = new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    assert.ok(isEventStream(response));
    done = writeResponse(res, response);
  });
  try {
    const ac = new AbortController();
    const r = await within(fetch(s.base, { signal: ac.signal }), 5_000, "the head before any event");
    assert.equal(r.headers.get("content-type"), "text/event-stream");
    const reader = r.body!.getReader();
    controller!.enqueue(new TextEncoder().encode("data: 1\n\n"));
    assert.equal(new TextDecoder().decode((await reader.read()).value), "data: 1\n\n");
    ac.abort();
    await waitFor(() => cancelled, 5_000, "the stream to be cancelled");
    await within(done!, 5_000, "writeResponse to finish");
    assert.equal(request!.signal.aborted, true);
  } finally {
    await s.close();
  }
});
