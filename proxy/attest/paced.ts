/**
 * A provider that makes one quote at a time, each taking at least `latencyMs`, as real hardware
 * does (DESIGN.md §4: Gramine's /dev/attestation is one file, aesmd's quoting enclave signs one
 * at a time, and a DCAP quote takes tens of milliseconds). Wrapped around the dev provider
 * (`attestation.dev.quoteLatency`), it lets tests and the benchmark see what quotes cost.
 */
import type { AttestationProvider } from "./provider.js";

export class PacedProvider implements AttestationProvider {
  readonly name: AttestationProvider["name"];
  readonly dev: boolean;
  /** The previous quote's completion, failed or not: the next one starts after it. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly inner: AttestationProvider,
    readonly latencyMs: number,
  ) {
    this.name = inner.name;
    this.dev = inner.dev;
  }

  quote(reportData: Uint8Array): Promise<Uint8Array> {
    const run = this.tail.then(async () => {
      const started = performance.now();
      try {
        return await this.inner.quote(reportData);
      } finally {
        // A failed quote holds the device as long as a good one: the next waits either way.
        const left = this.latencyMs - (performance.now() - started);
        if (left > 0) await new Promise((r) => setTimeout(r, Math.ceil(left)));
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** `provider` itself when there is no latency to model. */
export function paced(provider: AttestationProvider, latencyMs: number): AttestationProvider {
  return latencyMs > 0 ? new PacedProvider(provider, latencyMs) : provider;
}
