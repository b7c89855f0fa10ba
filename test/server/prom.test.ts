/**
 * serve loads prom-client part by part (proxy/server/prom.ts) and makes the CPU counters itself:
 * the process metrics must stay prom-client's default set, name for name, and the CPU counters
 * must count.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as prom from "prom-client";
import { Registry, collectProcessMetrics } from "../../proxy/server/prom.js";

async function shape(r: prom.Registry): Promise<string[]> {
  return (await r.getMetricsAsJSON()).map((m) => `${m.name} ${m.type} ${m.help}`).sort();
}

function value(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} in the exposition`);
  return Number(line.slice(name.length + 1));
}

describe("process metrics loaded part by part", () => {
  it("are prom-client's default metrics: same names, types and help", async () => {
    const ours = new Registry();
    collectProcessMetrics(ours);
    const theirs = new prom.Registry();
    prom.collectDefaultMetrics({ register: theirs });
    assert.deepEqual(await shape(ours), await shape(theirs));
  });

  it("the CPU counters grow with CPU spent, user plus system making the total", async () => {
    const r = new Registry();
    collectProcessMetrics(r);
    const before = await r.metrics();
    const end = performance.now() + 30;
    let x = 0;
    while (performance.now() < end) x += Math.sqrt(x + 1);
    assert.ok(x > 0);
    const after = await r.metrics();
    const total = value(after, "process_cpu_seconds_total");
    assert.ok(total > value(before, "process_cpu_seconds_total"));
    assert.ok(Math.abs(total - value(after, "process_cpu_user_seconds_total") - value(after, "process_cpu_system_seconds_total")) < 1e-6);
  });
});
