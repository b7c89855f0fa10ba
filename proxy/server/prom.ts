/**
 * The parts of prom-client the server uses, loaded file by file. Its index also loads the push
 * gateway, the summary (with its t-digest), the cluster aggregator and, through the CPU metric,
 * @opentelemetry/api for exemplars: about 5 MB resident that a proxy never uses, in an enclave
 * whose memory is the scarcest resource. The classes are the package's own (the cluster
 * aggregator, loaded by itself in worker mode, sees the same Registry).
 *
 * Node's process metrics are prom-client's default set under their standard names; the CPU time
 * counters are made here, without exemplars, so that nothing loads the tracing API.
 */
import { createRequire } from "node:module";
import type * as Prom from "prom-client";

const require = createRequire(import.meta.url);

export const Registry = require("prom-client/lib/registry") as typeof Prom.Registry;
export const Counter = require("prom-client/lib/counter") as typeof Prom.Counter;
export const Gauge = require("prom-client/lib/gauge") as typeof Prom.Gauge;
export const Histogram = require("prom-client/lib/histogram") as typeof Prom.Histogram;
export type Registry = Prom.Registry;
export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string = string> = Prom.Histogram<T>;

/** prom-client's default metrics but the CPU one, which is processCpu below. */
const DEFAULT_METRICS = [
  "processStartTime",
  "osMemoryHeap",
  "processOpenFileDescriptors",
  "processMaxFileDescriptors",
  "eventLoopLag",
  "processResources",
  "processHandles",
  "processRequests",
  "heapSizeAndUsed",
  "heapSpacesSizeAndUsed",
  "version",
  "gc",
] as const;

type DefaultMetric = (registry: Prom.Registry, config: { eventLoopMonitoringPrecision: number }) => void;

/** process_cpu_{user,system,}seconds_total, read from process.cpuUsage() when scraped. */
function processCpu(registry: Prom.Registry): void {
  let seen = process.cpuUsage();
  // Registered first and collected first (a scrape reads in registration order): it brings all three up to date.
  new Counter({
    name: "process_cpu_user_seconds_total",
    help: "Total user CPU time spent in seconds.",
    registers: [registry],
    collect() {
      const now = process.cpuUsage();
      const du = (now.user - seen.user) / 1e6;
      const ds = (now.system - seen.system) / 1e6;
      seen = now;
      this.inc(du);
      system.inc(ds);
      total.inc(du + ds);
    },
  });
  const system = new Counter({ name: "process_cpu_system_seconds_total", help: "Total system CPU time spent in seconds.", registers: [registry] });
  const total = new Counter({ name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", registers: [registry] });
}

/** Node's process metrics, as prom-client's collectDefaultMetrics registers them. */
export function collectProcessMetrics(registry: Prom.Registry): void {
  processCpu(registry);
  const resources = typeof (process as { getActiveResourcesInfo?: unknown }).getActiveResourcesInfo === "function";
  for (const name of DEFAULT_METRICS) {
    if (name === "processResources" && !resources) continue;
    (require(`prom-client/lib/metrics/${name}`) as DefaultMetric)(registry, { eventLoopMonitoringPrecision: 10 });
  }
}
