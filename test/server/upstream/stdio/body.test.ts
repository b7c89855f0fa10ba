/** The bounded JSON body reader over a real HTTP server: a value, the limit declared or chunked, a parse error. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readJsonBody, type BodyResult } from "../../../../proxy/server/upstream/stdio/body.js";
import { startUpstream } from "../../../support/upstream.js";

test("readJsonBody: a value within the limit; over it (declared or chunked) 413 with Connection: close; not JSON 400 -32700", async () => {
  const results: BodyResult[] = [];
  const s = await startUpstream((req, res) => {
    void readJsonBody(req, res, 64).then((r) => {
      results.push(r);
      if (r.ok) res.end(JSON.stringify(r.value));
    });
  });
  try {
    const ok = await fetch(s.base, { method: "POST", body: '{"a":[1,2]}' });
    assert.deepEqual(await ok.json(), { a: [1, 2] });

    const declared = await fetch(s.base, { method: "POST", body: "x".repeat(65) });
    assert.equal(declared.status, 413);
    assert.equal(declared.headers.get("connection"), "close");
    assert.match(((await declared.json()) as { error: { message: string } }).error.message, /must not exceed 64 bytes/);

    const chunked = await fetch(s.base, {
      method: "POST",
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 5; i++) c.enqueue(new TextEncoder().encode("y".repeat(20)));
          c.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    assert.equal(chunked.status, 413);
    await chunked.body?.cancel();

    const bad = await fetch(s.base, { method: "POST", body: "{nope" });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: number } }).error.code, -32700);
    assert.deepEqual(
      results.map((r) => r.ok),
      [true, false, false, false],
    );
  } finally {
    await s.close();
  }
});
