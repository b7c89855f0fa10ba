/**
 * `workers: N` (N > 1): N processes serve one port through node:cluster; 1 keeps the single
 * process and no primary at all.
 *
 * Each worker is a full `serve`: it opens the provider and mints its OWN key and RA-TLS
 * certificate. No private key ever crosses a process boundary; under Gramine every forked process
 * is a new enclave with the same measurement, and clients pin measurements, not keys, so any
 * worker's certificate verifies. The primary holds no key and serves no request: it opens the
 * provider once before forking (so the dev PKI is created by one process, not raced by N, and a
 * missing /dev/attestation fails before any fork), forks, prints the banner once every worker
 * listens, serves the aggregated metrics, and drains every worker on SIGTERM / SIGINT.
 *
 * Metrics: each worker keeps its own registry; the primary's listener (metrics.listen) asks
 * every worker over the cluster IPC channel and sums them (prom-client's AggregatorRegistry;
 * the certificate expiry gauge takes the minimum). Workers open no metrics listener.
 *
 * A worker that ends unexpectedly ends the whole proxy (exit 1) rather than being replaced: a
 * supervisor (systemd, Kubernetes) restarts it, and a crash loop stays visible.
 */
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { WorkerError } from "../core/errors.js";

export { WorkerError };

export const MSG_LISTENING = "attestable-mcp:listening";
export const MSG_SHUTDOWN = "attestable-mcp:shutdown";

export interface ListeningMessage {
  type: typeof MSG_LISTENING;
  address: { host: string; port: number };
  certificateSha256: string;
}

export const isWorker = (): boolean => cluster.isWorker;
export const workerId = (): number | undefined => cluster.worker?.id;

/** In a worker: tell the primary this worker listens. */
export function reportListening(msg: Omit<ListeningMessage, "type">): void {
  process.send?.({ type: MSG_LISTENING, ...msg } satisfies ListeningMessage);
}

/**
 * In a worker: resolves when the worker should drain: SIGTERM / SIGINT (also sent to the whole
 * process group, so they may arrive twice: later ones are ignored rather than killing the worker
 * mid-drain), a shutdown message, or the primary gone (IPC closed).
 */
export function workerStopRequested(): Promise<string> {
  return new Promise((resolve) => {
    process.on("SIGTERM", () => resolve("SIGTERM"));
    process.on("SIGINT", () => resolve("SIGINT"));
    process.on("message", (m: unknown) => {
      if ((m as { type?: unknown } | null)?.type === MSG_SHUTDOWN) resolve("primary");
    });
    process.on("disconnect", () => resolve("primary gone"));
  });
}

export interface PrimaryOptions {
  workers: number;
  drainMs: number;
  log: Logger;
  /** Called once every worker listens (the banner). */
  onListening(workers: ListeningMessage[]): void | Promise<void>;
  /** Start the aggregated metrics listener; returns its closer. */
  startMetrics?(): Promise<() => Promise<void>>;
}

/** In the primary: fork, wait for every worker to listen, then until a signal drains them all. Returns the exit code. */
export async function runPrimary(opts: PrimaryOptions): Promise<number> {
  const { log } = opts;
  const workers = new Map<number, Worker>();
  let stopping = false;
  // Written from event handlers: a holder, so no narrowing goes stale.
  const state: { failed: WorkerError | null; wake: () => void } = { failed: null, wake: () => {} };
  const stopNow = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
    state.wake = () => resolve("worker failed");
  });

  const listening = new Map<number, ListeningMessage>();
  let allListening!: () => void;
  const ready = new Promise<void>((r) => (allListening = r));
  const exits: Promise<void>[] = [];
  for (let i = 0; i < opts.workers; i++) {
    const w = cluster.fork();
    workers.set(w.id, w);
    w.on("message", (m: ListeningMessage) => {
      if (m?.type !== MSG_LISTENING) return;
      listening.set(w.id, m);
      log.info({ worker: w.id, pid: w.process.pid, certificateSha256: m.certificateSha256 }, "worker serving");
      if (listening.size === opts.workers) allListening();
    });
    exits.push(
      new Promise<void>((resolve) =>
        w.once("exit", (code, signal) => {
          workers.delete(w.id);
          if (!stopping || code !== 0) {
            const why = `worker ${w.id} (pid ${w.process.pid}) ${stopping ? "did not drain cleanly" : listening.has(w.id) ? "ended unexpectedly" : "could not start"}: ${signal ? `signal ${signal}` : `exit ${code}`}`;
            state.failed ??= new WorkerError(listening.has(w.id) ? "WORKER_EXITED" : "WORKER_START_FAILED", why);
            log.error({ worker: w.id, code, signal }, why);
            state.wake();
          }
          resolve();
        }),
      ),
    );
  }

  let closeMetrics: (() => Promise<void>) | null = null;
  const started = await Promise.race([ready.then(() => true), stopNow.then(() => false)]);
  if (started) {
    try {
      closeMetrics = (await opts.startMetrics?.()) ?? null;
      await opts.onListening([...listening.values()]);
    } catch (e) {
      state.failed ??= new WorkerError("WORKER_START_FAILED", `metrics listener: ${(e as Error).message}`);
      log.error({ err: (e as Error).message }, "could not start the metrics listener");
    }
    if (!state.failed) {
      const signal = await stopNow;
      if (!state.failed) log.info({ signal }, "shutting down: draining every worker");
    }
  }

  stopping = true;
  for (const w of workers.values()) if (w.isConnected()) w.send({ type: MSG_SHUTDOWN });
  // Each worker bounds its own drain; this bound is for a worker that hangs anyway.
  const bound = setTimeout(() => {
    for (const w of workers.values()) {
      log.warn({ worker: w.id }, "worker did not exit after the drain bound: killing it");
      w.process.kill("SIGKILL");
    }
  }, opts.drainMs + 5_000);
  await Promise.all(exits);
  clearTimeout(bound);
  await closeMetrics?.();
  const failed = state.failed;
  if (failed) {
    process.stderr.write(`attestable-mcp: ${failed.code}: ${failed.message}\n`);
    return 1;
  }
  return 0;
}
