/**
 * SIGTERM under load, to the spawned command: in-flight slow exchanges finish within
 * shutdown.drain, new connections are refused at once, and the process exits 0 as soon as they are
 * done (not at the end of the bound); a stream that would outlive the bound is cut at it, and the
 * exit is still 0.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { createRobustUpstream } from "../support/robust-upstream.js";
import { fetchVia, pinnedAgent, readSse, spawnServe, type Answer } from "../support/robust.js";
import { listen, portOf, shut } from "../support/upstream.js";
import { eventually, sleep, within } from "../support/wait.js";

const DRAIN_MS = 5000;
const SLOW_MS = 1000;

const up = createRobustUpstream();
before(() => listen(up.server));
after(() => shut(up.server));

function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect({ host: "127.0.0.1", port });
    c.once("connect", () => (c.destroy(), resolve("connected")));
    c.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe("SIGTERM under load", { timeout: 60_000 }, () => {
  it(`in-flight requests (upstream answers after ${SLOW_MS} ms) finish, new connections are refused, exit 0 once drained`, async () => {
    const s = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\nshutdown: { drain: ${DRAIN_MS}ms }\n`);
    const agent = pinnedAgent(s.certPem);
    try {
      // One kept-alive idle connection besides the busy ones: it must not hold the exit.
      assert.equal((await fetchVia(agent, s.port, "/fast")).status, 200);
      const t0 = performance.now();
      const inflight = Array.from({ length: 30 }, () => fetchVia(agent, s.port, `/slow?ms=${SLOW_MS}`).catch((e: Error) => e));
      await sleep(300);
      const termAt = performance.now();
      s.child.kill("SIGTERM");
      await sleep(100);
      const fresh = await connectOutcome(s.port);
      const results = await Promise.all(inflight);
      const doneAt = performance.now();
      const exit = await within(s.exited, DRAIN_MS + 5000, "serve exit");
      const exitAt = performance.now();
      const ok = results.filter((r): r is Answer => !(r instanceof Error) && r.status === 200).length;
      console.log(
        `SIGTERM: ${ok}/${results.length} in-flight answered 200 by ${Math.round(doneAt - t0)} ms; new connection after SIGTERM: ${fresh}; exit ${exit.code} ${Math.round(exitAt - termAt)} ms after SIGTERM (drain ${DRAIN_MS} ms)`,
      );
      assert.equal(
        ok,
        results.length,
        results
          .filter((r) => r instanceof Error)
          .map(String)
          .join("; "),
      );
      assert.equal(fresh, "ECONNREFUSED");
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(exitAt - termAt < DRAIN_MS, `exit ${exitAt - termAt} ms after SIGTERM: the drain waited for idle connections`);
      assert.doesNotMatch(s.output(), /drain bound reached/);
    } finally {
      agent.destroy();
      await s.stop();
    }
  });

  it("a stream still open at the drain bound is cut there; exit 0", async () => {
    const drain = 1500;
    const s = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\nshutdown: { drain: ${drain}ms }\n`);
    const agent = pinnedAgent(s.certPem);
    try {
      let events = 0;
      const stream = readSse(agent, s.port, "/sse?n=0&every=20&k=drain", () => events++);
      assert.ok(await eventually(() => events > 5, 5000));
      const termAt = performance.now();
      s.child.kill("SIGTERM");
      const o = await within(stream, drain + 3000, "stream end");
      const exit = await within(s.exited, drain + 5000, "serve exit");
      const exitAt = performance.now();
      console.log(
        `SIGTERM with a stream: ${o.seen.length} events, stream ${o.how} ${Math.round(o.at - termAt)} ms after SIGTERM, exit ${exit.code} after ${Math.round(exitAt - termAt)} ms (drain ${drain} ms)`,
      );
      assert.ok(o.at - termAt >= drain - 100, `the stream went on until the bound (${o.at - termAt} ms)`);
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(exitAt - termAt < drain + 3000);
      assert.match(s.output(), /drain bound reached/);
    } finally {
      agent.destroy();
      await s.stop();
    }
  });
});
