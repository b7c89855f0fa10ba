/**
 * The forwarder's connection pool: the most recently released connection is used next, the idle
 * set is capped, a connection the upstream closes while idle is forgotten, and close() ends them
 * all (a connection released afterwards is ended, not kept).
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { MAX_IDLE_CONNECTIONS, Pool, authorityOf, describeTarget } from "../../../../proxy/server/upstream/http/pool.js";
import { LOOPBACK, startUpstream } from "../../../support/upstream.js";
import { within } from "../../../support/wait.js";

describe("forwarder pool", () => {
  const pools: Pool[] = [];
  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });
  const pool = (port = 1): Pool => {
    const p = new Pool({ kind: "http", host: LOOPBACK, port });
    pools.push(p);
    return p;
  };

  it("names its target as messages do", () => {
    assert.equal(authorityOf({ kind: "http", host: "::1", port: 8080 }), "[::1]:8080");
    assert.equal(describeTarget({ kind: "http", host: "::1", port: 8080 }), "http://[::1]:8080");
    assert.equal(authorityOf({ kind: "unix", path: "/run/mcp.sock" }), "localhost");
    assert.equal(describeTarget({ kind: "unix", path: "/run/mcp.sock" }), "unix:/run/mcp.sock");
  });

  it("lifo: the connection released last is taken first; a discarded one never comes back", () => {
    const p = pool();
    const a = p.take();
    const b = p.take();
    assert.notEqual(a, b);
    p.release(a);
    p.release(b);
    assert.equal(p.take(), b);
    p.discard(a);
    assert.ok(a.gone);
    const c = p.take();
    assert.notEqual(c, a);
    p.release(a); // a gone slot is not pooled again
    assert.notEqual(p.take(), a);
  });

  it(`keeps at most ${MAX_IDLE_CONNECTIONS} idle connections`, () => {
    const p = pool();
    const slots = Array.from({ length: MAX_IDLE_CONNECTIONS + 1 }, () => p.take());
    for (const s of slots) p.release(s);
    assert.equal(slots.filter((s) => s.idle).length, MAX_IDLE_CONNECTIONS);
    assert.ok(slots[MAX_IDLE_CONNECTIONS]!.gone);
  });

  it("an idle connection the upstream closes is forgotten; close() ends the rest and later releases", async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end("ok");
    });
    try {
      const p = pool(up.port);
      const slot = p.take();
      const r = await slot.client.request({ path: "/", method: "GET" });
      assert.equal(await r.body.text(), "ok");
      p.release(slot);
      assert.ok(slot.idle);
      const disconnected = new Promise<void>((resolve) => slot.client.once("disconnect", () => resolve()));
      up.server.closeAllConnections();
      await within(disconnected, 5000, "the upstream's close");
      assert.ok(slot.gone);
      assert.notEqual(p.take(), slot);

      const busy = p.take();
      await p.close();
      assert.ok(busy.gone);
      const late = p.take();
      p.release(late);
      assert.ok(late.gone);
    } finally {
      await up.close();
    }
  });
});
