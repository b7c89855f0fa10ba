/**
 * Many long SSE streams through `serve` at once: every event arrives exactly once and in order,
 * each stream ends as the upstream ended it, and nothing stays open afterwards. `npm run soak`
 * runs the same scenario for a minute.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createRobustUpstream } from "../support/robust-upstream.js";
import { streamScenario } from "../support/robust-scenarios.js";
import { fdCount, fdTargets, metric, scrape, spawnServe, type SpawnedServe } from "../support/robust.js";
import { listen, portOf, shut } from "../support/upstream.js";
import { eventually } from "../support/wait.js";

const STREAMS = 200;
const SECONDS = 10;
const EVERY_MS = 50;

describe("SSE streams through serve", { timeout: 60_000 }, () => {
  const up = createRobustUpstream();
  let serve: SpawnedServe | undefined;
  before(async () => {
    await listen(up.server);
    serve = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\n`);
  });
  after(async () => {
    await serve?.stop();
    await shut(up.server);
  });

  it(`${STREAMS} concurrent streams for ${SECONDS} s: every event exactly once, in order; nothing left open`, async () => {
    const s = serve!;
    const fdsBefore = fdCount(s.pid);
    const f = await streamScenario(s, up.stats, { streams: STREAMS, seconds: SECONDS, everyMs: EVERY_MS });
    console.log(`streams: ${f.intact}/${f.streams} intact, ${f.received} events received of ${f.sent} sent (${f.eventsPerStream} per stream), ${Math.round(f.ms)} ms`);
    assert.deepEqual(f.problems, []);
    assert.equal(f.intact, STREAMS);
    assert.equal(f.received, STREAMS * f.eventsPerStream);
    assert.equal(f.sent, f.received);
    // Our agent is gone; serve's client sockets close, its upstream keep-alive pool may remain (closed by the upstream below).
    up.server.closeIdleConnections();
    const settled = await eventually(() => fdCount(s.pid) <= fdsBefore, 5000);
    assert.ok(settled, `fds ${fdsBefore} before, ${fdCount(s.pid)} after:\n${fdTargets(s.pid).join("\n")}`);
    const m = await scrape(s.metricsPort);
    assert.equal(metric(m, "attestable_mcp_open_streams", 'kind="sse"'), 0);
    assert.equal(metric(m, "attestable_mcp_open_connections"), 0);
    console.log(`streams: serve fds ${fdsBefore} before, ${fdCount(s.pid)} after`);
  });
});
