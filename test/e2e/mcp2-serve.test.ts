/**
 * MCP 2026-07-28 through `serve` with a stdio upstream: the v2 test server (`--era dual`) as the
 * child, the v2 client over attestedFetch, pinned to 2026-07-28 and in `auto`. The proxy is the
 * server of record: requests without a session go to the modern pool (one long-lived child by
 * default, shared by every client), validated as the spec says before any child sees them; SDK
 * 1.x clients keep their `initialize` sessions, a child each, apart from the pool.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/client";
import { connectHttp, connectV1Http, ELICIT_ANSWER, eraOf, MODERN, negotiatedVersion, type Mode } from "../support/mcp2/client.js";
import { notificationsAfterTouch } from "../support/mcp2/checks.js";
import { cancelLines, cancelLogFile, ENVELOPE, messagesOf, modernCall, serveMcp2, type Served } from "../support/mcp2/serve.js";
import { waitFor, within } from "../support/wait.js";

const textOf = (r: { content?: unknown }): string => {
  const c = (r.content as Array<{ type: string; text?: string }> | undefined)?.[0];
  assert.ok(c && c.type === "text", `expected a text block, got ${JSON.stringify(r).slice(0, 300)}`);
  return c.text ?? "";
};

describe("serve, stdio upstream, MCP 2026-07-28: the v2 client through attestedFetch", { timeout: 240_000 }, () => {
  const cancelLog = cancelLogFile();
  let s: Served;
  before(async () => {
    s = await serveMcp2("dual", { MCP2_CANCEL_LOG: cancelLog });
  });
  after(() => s?.close());

  it("invalid modern requests are answered by the proxy and reach no child: 400 -32020, 400 -32022, 405", async () => {
    const call = modernCall(7, "echo", { message: "x" });
    const other = await s.post(call.body, { ...call.headers, "mcp-name": "other" });
    assert.equal(other.status, 400);
    const o = JSON.parse(other.body) as { id: unknown; error: { code: number; message: string; data: { mismatch: { header: string; body: string } } } };
    assert.equal(o.id, 7, "the request's id in the error");
    assert.equal(o.error.code, -32020);
    assert.match(o.error.message, /Mcp-Name header names "other"/);
    assert.deepEqual(o.error.data.mismatch, { header: "other", body: 'the body carries params.name="echo" but the Mcp-Name header names "other"' });

    const method = await s.post(call.body, { ...call.headers, "mcp-method": "tools/list" });
    assert.equal(method.status, 400);
    assert.match(JSON.parse(method.body).error.message, /Mcp-Method header names tools\/list/);
    const noMethod = await s.post(call.body, { "mcp-protocol-version": MODERN, "mcp-name": "echo" });
    assert.equal(JSON.parse(noMethod.body).error.code, -32020);
    const version = await s.post(call.body, { ...call.headers, "mcp-protocol-version": "2099-01-01" });
    assert.equal(version.status, 400);
    assert.match(JSON.parse(version.body).error.message, /envelope names protocol version 2026-07-28 but the MCP-Protocol-Version header names 2099-01-01/);
    const badParam = await s.post(modernCall(8, "route", { region: "eu", text: "t" }).body, { ...modernCall(8, "route", {}).headers, "mcp-param-region": "=?base64?%%%?=" });
    assert.equal(badParam.status, 400);
    assert.equal(JSON.parse(badParam.body).error.code, -32020);

    const future = modernCall("f", "echo", { message: "x" }, "2099-01-01");
    const unsupported = await s.post(future.body, future.headers);
    assert.equal(unsupported.status, 400);
    assert.deepEqual(JSON.parse(unsupported.body), {
      jsonrpc: "2.0",
      id: "f",
      error: { code: -32022, message: "Unsupported protocol version: 2099-01-01", data: { supported: [MODERN], requested: "2099-01-01" } },
    });

    for (const m of ["GET", "DELETE"]) {
      const r = await s.request(m, { accept: "text/event-stream", "mcp-protocol-version": MODERN });
      assert.equal(r.status, 405, m);
      assert.equal(r.headers.allow, "POST");
      assert.deepEqual(JSON.parse(r.body), { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Method not allowed." } });
    }
    // A legacy client without a session still gets the answer it always got.
    const legacy = await s.post({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    assert.equal(legacy.status, 400);
    assert.equal(JSON.parse(legacy.body).error.message, "Bad Request: No valid session ID provided");
    assert.deepEqual(s.children(), [], "no child was started for any of them");

    // The same request with agreeing headers does reach one, and a stale session id is ignored.
    const ok = await s.post(call.body, { ...call.headers, "mcp-session-id": "stale-0dea0f24" });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.headers["content-type"], "application/json", "a lone answer is plain JSON");
    assert.equal(ok.headers["mcp-session-id"], undefined);
    assert.deepEqual(messagesOf(ok)[0]?.id, 7);
    assert.equal(s.children().length, 1);
  });

  for (const mode of ["pin", "auto"] as Mode[]) {
    it(`${mode}: 2026-07-28; tools with progress while running, MRTR elicitation, resources, prompts, subscriptions/listen, cancellation`, async () => {
      const c = await within(connectHttp(s.url, { mode, fetch: await s.fetch() }), 30_000, "connect");
      const client: Client = c.client;
      try {
        assert.equal(negotiatedVersion(client), MODERN);
        assert.equal(eraOf(client), "modern");
        assert.deepEqual(client.getDiscoverResult()?.supportedVersions, [MODERN]);

        assert.equal(textOf(await within(client.callTool({ name: "echo", arguments: { message: `hello ${mode}` } }), 10_000, "echo")), `hello ${mode}`);

        const steps = 5;
        const progress: number[] = [];
        const r = await within(client.callTool({ name: "progress", arguments: { steps, ms: 150 } }, { onprogress: (p) => progress.push(p.progress), timeout: 20_000 }), 20_000, "progress");
        const beforeResult = progress.length;
        assert.equal(textOf(r), `progress done: ${steps}`);
        // The SDK client may drop a last notification read with the response (mcp2-direct.test.ts).
        assert.ok(beforeResult >= steps - 1, `progress before the result: ${beforeResult} of ${steps}`);
        assert.deepEqual(progress, [1, 2, 3, 4, 5].slice(0, progress.length));

        const asked = c.seen.elicitations.length;
        assert.equal(textOf(await within(client.callTool({ name: "ask", arguments: { question: `Through ${mode}?` } }), 10_000, "ask")), `answer: ${ELICIT_ANSWER}`);
        assert.equal(c.seen.elicitations.length, asked + 1, "one MRTR round trip");
        assert.equal(c.seen.elicitations.at(-1)?.message, `Through ${mode}?`);

        // x-mcp-header: once the proxy has seen the tool listed, the header is required (and the client sends it).
        await within(client.listTools(undefined, { cacheMode: "refresh" }), 10_000, "tools/list");
        assert.equal(textOf(await within(client.callTool({ name: "route", arguments: { region: "Zürich ", text: "b" } }), 10_000, "route")), "Zürich : b");

        const read = await within(client.readResource({ uri: "mcp2://hello" }), 10_000, "read");
        assert.equal((read.contents[0] as { text?: string }).text, "hello from mcp2");
        const prompt = await within(client.getPrompt({ name: "greet", arguments: { name: "Bob" } }), 10_000, "prompt");
        assert.deepEqual(prompt.messages[0]?.content, { type: "text", text: "Hello, Bob!" });

        const { ids, sub } = await notificationsAfterTouch(client, 10_000);
        // The proxy hands the client back its own subscription id, not the one it used upstream.
        for (const id of ids) assert.match(id, /^listen:/);
        assert.equal(await within(sub.closed, 5_000, "closed"), "local");

        const seenBefore = cancelLines(cancelLog).length;
        const ac = new AbortController();
        const call = client.callTool({ name: "wait_cancel", arguments: { ms: 30_000 } }, { signal: ac.signal, timeout: 40_000 });
        const settled = call.then(
          () => "resolved",
          (e: Error) => e,
        );
        await waitFor(
          () =>
            cancelLines(cancelLog)
              .slice(seenBefore)
              .some((l) => l.startsWith("started ")),
          10_000,
          "wait_cancel started",
        );
        const id = cancelLines(cancelLog)
          .slice(seenBefore)
          .find((l) => l.startsWith("started "))!
          .slice("started ".length);
        ac.abort();
        assert.ok((await within(settled, 5_000, "aborted call settles")) instanceof Error);
        await waitFor(() => cancelLines(cancelLog).includes(`cancelled ${id}`), 5_000, `cancelled ${id} in the child's cancel log`);
        assert.equal(s.children().length, 1, "still the one pool child");
      } finally {
        await within(c.close(), 10_000, "close").catch(() => {});
      }
    });
  }

  it("50 concurrent modern clients: one child, every answer and every progress notification its own", async () => {
    const pool = s.children();
    assert.equal(pool.length, 1);
    const fetch = await s.fetch("certificate");
    const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => within(connectHttp(s.url, { mode: i % 2 ? "auto" : "pin", fetch, name: `c${i}` }), 60_000, `connect ${i}`)));
    try {
      await Promise.all(
        clients.map(async (c, i) => {
          const steps = 2 + (i % 4);
          const seen: Array<{ progress: number; total?: number }> = [];
          const [echo, done] = await Promise.all([
            within(c.client.callTool({ name: "echo", arguments: { message: `payload-${i}` } }), 30_000, `echo ${i}`),
            within(c.client.callTool({ name: "progress", arguments: { steps, ms: 50 } }, { onprogress: (p) => seen.push(p), timeout: 30_000 }), 30_000, `progress ${i}`),
          ]);
          assert.equal(textOf(echo), `payload-${i}`);
          assert.equal(textOf(done), `progress done: ${steps}`);
          assert.ok(seen.length >= steps - 1, `client ${i}: ${seen.length} of ${steps} progress notifications`);
          for (const [k, p] of seen.entries()) assert.deepEqual(p, { progress: k + 1, total: steps, message: `step ${k + 1}/${steps}` }, `client ${i}'s own progress`);
        }),
      );
      assert.deepEqual(s.children(), pool, "the same one child served them all");

      // One more client: its first tool result comes from the running pool, nothing is spawned.
      let spawned = false;
      const watch = setInterval(() => {
        if (s.children().some((p) => !pool.includes(p))) spawned = true;
      }, 10);
      try {
        const late = await within(connectHttp(s.url, { mode: "pin", fetch }), 20_000, "late connect");
        assert.equal(textOf(await within(late.client.callTool({ name: "echo", arguments: { message: "late" } }), 10_000, "late echo")), "late");
        await late.close();
      } finally {
        clearInterval(watch);
      }
      assert.equal(spawned, false, "no process was spawned for the new client");
      assert.deepEqual(s.children(), pool);
    } finally {
      await Promise.all(clients.map((c) => within(c.close(), 10_000, "close").catch(() => {})));
    }
  });

  it("an SDK 1.x client keeps its legacy session (a child of its own, apart from the pool) through the same serve", async () => {
    const pool = s.children();
    const c = await within(connectV1Http(s.url, (await s.fetch()) as never), 20_000, "v1 connect");
    try {
      assert.equal(s.children().length, pool.length + 1, "the session's own child");
      assert.equal(textOf((await within(c.client.callTool({ name: "echo", arguments: { message: "from 1.x" } }), 10_000, "echo")) as never), "from 1.x");
      const a = await within(c.client.callTool({ name: "ask", arguments: { question: "Legacy?" } }), 10_000, "ask");
      assert.equal(textOf(a as never), `answer: ${ELICIT_ANSWER}`);
      assert.equal(c.seen.elicitations.length, 1, "elicitation/create reached the 1.x client mid-call");
    } finally {
      await within(c.close(), 10_000, "close").catch(() => {});
    }
    assert.ok(
      pool.every((p) => s.children().includes(p)),
      "the pool child lives on",
    );
  });

  it("raw: one client's ids, progress tokens and logs stay its own when another uses the same ids", async () => {
    const ask = (id: number, steps: number, logs: boolean) => {
      const call = modernCall(id, "progress", { steps, ms: 40 });
      const meta = { ...ENVELOPE, progressToken: "tok", ...(logs && { "io.modelcontextprotocol/logLevel": "debug" }) };
      (call.body as { params: { _meta: unknown } }).params._meta = meta;
      return s.post(call.body, call.headers);
    };
    const [a, b] = await Promise.all([ask(1, 2, true), ask(1, 3, false)]);
    const ma = messagesOf(a);
    const mb = messagesOf(b);
    assert.equal(a.headers["content-type"], "text/event-stream");
    assert.equal(a.headers["x-accel-buffering"], "no");
    assert.deepEqual(ma.at(-1)?.id, 1);
    assert.deepEqual(mb.at(-1)?.id, 1);
    assert.match(JSON.stringify(ma.at(-1)), /progress done: 2/);
    assert.match(JSON.stringify(mb.at(-1)), /progress done: 3/);
    const progressOf = (ms: Array<Record<string, unknown>>) => ms.filter((m) => m.method === "notifications/progress").map((m) => m.params as Record<string, unknown>);
    assert.deepEqual(
      progressOf(ma).map((p) => [p.progressToken, p.total]),
      [
        ["tok", 2],
        ["tok", 2],
      ],
    );
    assert.deepEqual(
      progressOf(mb).map((p) => [p.progressToken, p.total]),
      [
        ["tok", 3],
        ["tok", 3],
        ["tok", 3],
      ],
    );
    // Only the request that asked for log messages gets the one its call sent.
    assert.equal(ma.filter((m) => m.method === "notifications/message").length, 1);
    assert.equal(mb.filter((m) => m.method === "notifications/message").length, 0);
  });

  it("raw: Mcp-Param-* against the body, for a tool the proxy has seen listed (route: x-mcp-header Region)", async () => {
    const route = modernCall(3, "route", { region: "eu", text: "t" });
    const absent = await s.post(route.body, route.headers);
    assert.equal(absent.status, 400);
    assert.deepEqual(JSON.parse(absent.body).error.data, { mismatch: { header: "Mcp-Param-Region", body: 'the body carries region="eu" but the Mcp-Param-Region header is absent' } });
    const wrong = await s.post(route.body, { ...route.headers, "mcp-param-region": "us" });
    assert.equal(JSON.parse(wrong.body).error.message, 'Bad Request: the request headers and body disagree: the Mcp-Param-Region header decodes to "us" but the body carries region="eu"');
    const right = await s.post(route.body, { ...route.headers, "mcp-param-region": "eu" });
    assert.equal(right.status, 200);
    assert.match(right.body, /eu: t/);
    const encoded = modernCall(4, "route", { region: "Zürich ", text: "b" });
    const b64 = await s.post(encoded.body, { ...encoded.headers, "mcp-param-region": `=?base64?${Buffer.from("Zürich ").toString("base64")}?=` });
    assert.match(b64.body, /Zürich : b/);
  });
});
