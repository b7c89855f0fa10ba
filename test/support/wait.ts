/** Waiting, bounded: every wait in the suite has a limit in time and in count. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects after `ms` so no test waits forever. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `cond` every `stepMs` until it holds or `ms` elapsed; answers whether it held. */
export async function eventually(cond: () => boolean | Promise<boolean>, ms: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; i <= Math.ceil(ms / stepMs); i++) {
    if (await cond()) return true;
    if (Date.now() >= deadline) break;
    await sleep(stepMs);
  }
  return cond();
}

/** Like `eventually`, but a condition that never held fails the test, naming what was awaited. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string, stepMs = 25): Promise<void> {
  if (!(await eventually(cond, ms, stepMs))) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Whether a process with this pid still exists (signal 0 probes without delivering). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A fresh private directory under the system's temp dir. */
export function tempDir(prefix = "amcp-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
