/**
 * One MCP server process on stdio: newline-delimited JSON-RPC on stdin and stdout (a line over
 * `maxMessageSize` is skipped and reported, see framing.ts), stderr lines to the log, its exit
 * reported once, and a bounded stop (stdin closed, SIGTERM, SIGKILL after a grace). The process
 * is spawned here rather than through the SDK's client transport, which keeps its ChildProcess
 * private: the exit code, the signal and the kill are this file's business.
 *
 * Nothing here knows who holds the child (a legacy session today; a pool of long-lived children
 * for the stateless protocol revision can hold the same thing): its owner names it in the logger
 * it passes and hears from it through `ChildEvents`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { deserializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { LineReader } from "./framing.js";

/** SIGTERM → SIGKILL. */
export const KILL_GRACE_MS = 2_000;
/** After the child's `exit`, how long to wait for its stdout to drain (`close`) before taking it as gone anyway. */
const EXIT_DRAIN_MS = 1_000;
/** Longest stderr line logged as one record; longer lines are split. */
export const STDERR_LINE_MAX = 8 * 1024;
/** upstream.maxMessageSize: the longest line read from a child's stdout. */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
/** JSON-RPC code of the answer that stands in for a message over the limit: the server's answer could not be delivered. */
export const OVERSIZE_CODE = -32603;

/** 67108864 → "64 MiB", 1536 → "1.5 KiB", 100 → "100 bytes". */
export function formatSize(n: number): string {
  for (const [unit, k] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (n >= k) return `${Number((n / k).toFixed(2))} ${unit}`;
  }
  return `${n} bytes`;
}

/** The error a request gets in place of an answer over the limit. */
export function oversizeError(id: string | number, limit: number): JSONRPCMessage {
  return { jsonrpc: "2.0", id, error: { code: OVERSIZE_CODE, message: `message from the MCP server exceeds upstream.maxMessageSize (${formatSize(limit)})` } };
}

/** What every child of one upstream runs: argv, environment and working directory. */
export interface ChildCommand {
  executable: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Longest message (line) read from stdout; default DEFAULT_MAX_MESSAGE_SIZE. */
  maxMessageSize?: number;
}

/**
 * The child gets PATH, HOME and what the configuration adds: the proxy's own environment (its
 * secrets among it) is not passed on.
 */
export function childEnv(extra: Record<string, string> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  if (process.env.PATH !== undefined) env.PATH = process.env.PATH;
  if (process.env.HOME !== undefined) env.HOME = process.env.HOME;
  return Object.assign(env, extra);
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildEvents {
  /** A well-formed JSON-RPC message from the child's stdout. */
  message(m: JSONRPCMessage): void;
  /** The child is gone (stdio closed, or exited and not drained within a bound); only for a child that started. */
  exit(info: ExitInfo): void;
  /**
   * A line over maxMessageSize was skipped (the child and the lines after it live on). `id` is its
   * top-level JSON-RPC id (null: none could be read); `method` says the child sent it as a request
   * or notification of its own rather than as an answer. Without this the line is only logged.
   */
  onOversize?(id: string | number | null, bytes: number, method: boolean): void;
}

/** Splits a text stream into lines (each at most STDERR_LINE_MAX characters) and hands the non-empty ones to `emit`. */
export function lineSplitter(stream: Readable, emit: (line: string) => void): void {
  let buf = "";
  const flush = (line: string): void => {
    const l = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (l.length > 0) emit(l);
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buf += chunk;
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0 && nl <= STDERR_LINE_MAX) {
        flush(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      } else if (buf.length > STDERR_LINE_MAX) {
        flush(buf.slice(0, STDERR_LINE_MAX));
        buf = buf.slice(STDERR_LINE_MAX);
      } else {
        break;
      }
    }
  });
  stream.on("end", () => {
    flush(buf);
    buf = "";
  });
  stream.on("error", () => {});
}

/** Resolves when `p` settles or `ms` elapsed, whichever is first; never rejects. */
export function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    const done = (): void => {
      clearTimeout(t);
      resolve();
    };
    p.then(done, done);
  });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class Child {
  private proc: ChildProcess | undefined;
  private spawned = false;
  private isGone = false;
  private exitInfo: ExitInfo | undefined;
  private readonly reader: LineReader;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private goneResolve!: () => void;
  /** Resolves when the child is gone (stdio closed, or exited and drained or not within a bound). */
  readonly gone: Promise<void> = new Promise((r) => (this.goneResolve = r));

  constructor(
    private readonly command: ChildCommand,
    private readonly log: Logger,
    private readonly events: ChildEvents,
  ) {
    this.reader = new LineReader(
      this.maxMessageSize,
      (line) => this.line(line),
      ({ id, method, bytes }) => {
        this.log.warn({ bytes, limit: this.maxMessageSize, id }, "stdio child: message over upstream.maxMessageSize skipped");
        try {
          this.events.onOversize?.(id, bytes, method);
        } catch (err) {
          // As for a message: the owner's failure must not end the reading of the child.
          this.log.warn({ err: messageOf(err) }, "stdio child transport error");
        }
      },
    );
  }

  get maxMessageSize(): number {
    return this.command.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  }

  get pid(): number | undefined {
    return this.spawned ? this.proc?.pid : undefined;
  }

  /** Spawns the process; rejects when it cannot start (no such executable, no permission). */
  start(): Promise<void> {
    this.starting ??= new Promise((resolve, reject) => {
      const { executable, args, env, cwd } = this.command;
      const proc = spawn(executable, args, { env, cwd, stdio: ["pipe", "pipe", "pipe"], shell: false, windowsHide: true });
      this.proc = proc;
      proc.once("spawn", () => {
        this.spawned = true;
        resolve();
      });
      proc.on("error", (err) => {
        if (!this.spawned) reject(err);
        else this.log.warn({ err: err.message }, "stdio child transport error");
      });
      proc.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        // Normally `close` follows once stdout drained; a grandchild holding the pipe must not keep the child.
        setTimeout(() => this.markGone(), EXIT_DRAIN_MS).unref();
      });
      proc.once("close", () => this.markGone());
      // Without pipes (no file descriptors left) the spawn fails and `error` follows.
      proc.stdin?.on("error", (err) => this.log.warn({ err: err.message }, "stdio child transport error"));
      proc.stdout?.on("error", (err) => this.log.warn({ err: err.message }, "stdio child transport error"));
      proc.stdout?.on("data", (chunk: Buffer) => this.reader.push(chunk));
      proc.stdout?.on("end", () => this.reader.clear());
      if (proc.stderr) lineSplitter(proc.stderr, (line) => this.log.info({ stderr: line }));
    });
    return this.starting;
  }

  /** Writes one message to the child's stdin, whatever its size; false when the child can no longer take it. */
  send(m: JSONRPCMessage): boolean {
    const stdin = this.proc?.stdin;
    if (!this.spawned || this.isGone || !stdin || stdin.destroyed || stdin.writableEnded) return false;
    stdin.write(`${JSON.stringify(m)}\n`);
    return true;
  }

  /**
   * stdin closed, SIGTERM now, SIGKILL after KILL_GRACE_MS; resolves once the child is gone or a
   * bound later. A child still being spawned is stopped once it is there.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.starting && !this.spawned) await bounded(this.starting, KILL_GRACE_MS);
      if (!this.spawned || this.isGone) return;
      try {
        this.proc?.stdin?.end();
      } catch {
        // already closed
      }
      this.signal("SIGTERM");
      const killer = setTimeout(() => this.signal("SIGKILL"), KILL_GRACE_MS);
      killer.unref();
      void this.gone.then(() => clearTimeout(killer));
      await bounded(this.gone, KILL_GRACE_MS + 1_000);
    })();
    return this.stopping;
  }

  private line(line: Buffer): void {
    try {
      this.events.message(deserializeMessage(line.toString("utf8")));
    } catch (err) {
      // Not JSON-RPC: that line is dropped, the ones after it still count.
      this.log.warn({ err: messageOf(err) }, "stdio child transport error");
    }
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.isGone || this.exitInfo) return;
    try {
      this.proc?.kill(sig);
    } catch {
      // already gone
    }
  }

  private markGone(): void {
    if (this.isGone) return;
    this.isGone = true;
    this.goneResolve();
    if (this.spawned) this.events.exit(this.exitInfo ?? { code: null, signal: null });
  }
}
