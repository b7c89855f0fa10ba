/**
 * A stdio tee: runs a child command and passes its stdin and stdout through unchanged, appending
 * every line each way to a log file.
 *
 *   node tee.js --log FILE [--max CHARS] -- COMMAND [ARGS...]
 *
 * Log lines: `<ms since tee start> <tee pid> C>S <line>` (what the client wrote to the server's
 * stdin) and `... S>C <line>` (what the server wrote to stdout); lines longer than `--max`
 * (default 4000) are cut and marked `…[+N chars]`. The child's stderr is inherited. The tee exits
 * with the child; SIGTERM/SIGINT are passed on to it.
 */
import { spawn } from "node:child_process";
import { appendFileSync } from "node:fs";

const argv = process.argv.slice(2);
const sep = argv.indexOf("--");
if (sep < 0 || sep === argv.length - 1) {
  process.stderr.write("usage: tee.js --log FILE [--max CHARS] -- COMMAND [ARGS...]\n");
  process.exit(2);
}
const own = argv.slice(0, sep);
const [command, ...args] = argv.slice(sep + 1) as [string, ...string[]];
const opt = (name: string): string | undefined => {
  const i = own.indexOf(name);
  return i >= 0 ? own[i + 1] : undefined;
};
const logFile = opt("--log");
const max = Number(opt("--max") ?? 4000);
const t0 = Date.now();

function log(dir: "C>S" | "S>C", line: string): void {
  if (!logFile) return;
  const shown = line.length > max ? `${line.slice(0, max)}…[+${line.length - max} chars]` : line;
  appendFileSync(logFile, `${Date.now() - t0} ${process.pid} ${dir} ${shown}\n`);
}

/** Splits a byte stream into lines for the log without holding more than one partial line. */
function lineLogger(dir: "C>S" | "S>C"): { push(chunk: Buffer): void; end(): void } {
  let parts: Buffer[] = [];
  return {
    push(chunk) {
      let start = 0;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, start)) {
        parts.push(chunk.subarray(start, i));
        log(dir, Buffer.concat(parts).toString("utf8"));
        parts = [];
        start = i + 1;
      }
      if (start < chunk.length) parts.push(chunk.subarray(start));
    },
    end() {
      if (parts.length > 0) log(dir, Buffer.concat(parts).toString("utf8") + " [no newline]");
      parts = [];
    },
  };
}

const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
const inLog = lineLogger("C>S");
const outLog = lineLogger("S>C");

process.stdin.on("data", (d: Buffer) => {
  inLog.push(d);
  child.stdin.write(d);
});
process.stdin.on("end", () => {
  inLog.end();
  if (logFile) appendFileSync(logFile, `${Date.now() - t0} ${process.pid} C>S <stdin closed>\n`);
  child.stdin.end();
});
child.stdin.on("error", () => {});
child.stdout.on("data", (d: Buffer) => {
  outLog.push(d);
  process.stdout.write(d);
});
child.stdout.on("end", () => outLog.end());
child.on("exit", (code, signal) => {
  if (logFile) appendFileSync(logFile, `${Date.now() - t0} ${process.pid} --- child exited code=${code} signal=${signal}\n`);
  process.stdout.write("", () => process.exit(code ?? 1));
});
for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => child.kill(sig));
if (logFile) appendFileSync(logFile, `${Date.now() - t0} ${process.pid} --- spawned ${[command, ...args].join(" ")}\n`);
