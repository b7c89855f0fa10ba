/**
 * Whether the MCP server command can be started, as /healthz tells it: an executable command[0]
 * says little (`node /missing.js` is executable and dies at once). Every child the upstream
 * starts (session, modern pool) reports here: a spawn that fails, or a child that exits on its
 * own within QUICK_EXIT_MS of its start, is a failure; a child still alive after that clears it.
 *
 * Before any child has shown either, /healthz starts one trial child itself (at most one per
 * TRIAL_EVERY_MS), so a broken command is reported before the first client finds it. Under
 * Gramine a trial is an enclave start: it happens only until one child has lived.
 */
import type { Logger } from "pino";
import { bounded, Child, type ChildCommand, type ExitInfo } from "./child.js";

/** A child that exits by itself sooner than this after its start did not start. */
export const QUICK_EXIT_MS = 1_000;
const TRIAL_EVERY_MS = 10_000;

function exitText(info: ExitInfo): string {
  return info.signal ? `signal ${info.signal}` : `code ${info.code}`;
}

export class StartHealth {
  private failure: string | null = null;
  private proven = false;
  private trial: Promise<void> | undefined;
  private lastTrial = 0;

  constructor(
    private readonly command: ChildCommand,
    private readonly log: Logger,
  ) {}

  /** A child started; `gone` says whether it has exited since. */
  started(gone: () => boolean): void {
    setTimeout(() => {
      if (gone()) return;
      this.proven = true;
      this.failure = null;
    }, QUICK_EXIT_MS).unref();
  }

  /** A child could not be spawned. */
  spawnFailed(err: unknown): void {
    this.failure = `MCP server command cannot be started (${err instanceof Error ? err.message : String(err)})`;
  }

  /** A child exited without being asked to, `startedAt` being when it started. */
  exited(startedAt: number, info: ExitInfo): void {
    if (Date.now() - startedAt < QUICK_EXIT_MS) this.failure = `MCP server process exited at once (${exitText(info)})`;
  }

  /** Why children cannot be started, or null; starts a trial child while nothing is known. */
  async problem(): Promise<string | null> {
    if (this.failure || this.proven) return this.failure;
    if (!this.trial && Date.now() - this.lastTrial >= TRIAL_EVERY_MS) {
      this.lastTrial = Date.now();
      this.trial = this.runTrial().finally(() => {
        this.trial = undefined;
      });
    }
    if (this.trial) await this.trial;
    return this.failure;
  }

  private async runTrial(): Promise<void> {
    let exit: ExitInfo | undefined;
    let onExit = (): void => {};
    const exited = new Promise<void>((r) => (onExit = r));
    const log = this.log.child({ trial: true });
    const child = new Child(this.command, log, {
      message: () => {},
      exit: (info) => {
        exit = info;
        onExit();
      },
    });
    const t0 = Date.now();
    try {
      await child.start();
    } catch (err) {
      this.spawnFailed(err);
      return;
    }
    this.started(() => exit !== undefined);
    await bounded(exited, QUICK_EXIT_MS + 200);
    if (exit) this.exited(t0, exit);
    await child.stop();
  }
}
