/**
 * One stdio child on its own (no session, no HTTP): JSON-RPC lines both ways, a line that is not
 * JSON-RPC dropped without losing the next, stderr lines in the owner's log (long ones split),
 * the exit reported once with its code, a start that fails, and a stop that escalates to SIGKILL.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { Child, childEnv, KILL_GRACE_MS, STDERR_LINE_MAX, type ChildCommand, type ExitInfo } from "../../../../proxy/server/upstream/stdio/child.js";
import { alive, waitFor, within } from "../../../support/wait.js";

/** Echoes each request's params back as its result; `x/exit` exits 7; stderr gets a long line at start. */
const ECHO = String.raw`
process.stderr.write("up\n" + "e".repeat(${STDERR_LINE_MAX} + 10) + "\n");
process.stdout.write("not json\n");
let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => {
  buf += c;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const m = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    if (m.method === "x/exit") process.exit(7);
    process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { got: m.params } }) + "\n");
  }
});
`;
/** Ignores SIGTERM and stdin's end: only SIGKILL ends it. */
const STUBBORN = `process.on("SIGTERM", () => {}); process.stdin.resume(); setInterval(() => {}, 1000); console.log('{"jsonrpc":"2.0","method":"ready"}');`;

function command(script: string): ChildCommand {
  return { executable: process.execPath, args: ["-e", script], env: childEnv(undefined) };
}

function recorder(): { log: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log: log.child({ owner: "test" }), records };
}

test("childEnv: PATH, HOME and what is added, nothing else of the proxy's environment", () => {
  process.env.CHILD_TEST_SECRET = "must-not-leak";
  try {
    const env = childEnv({ EXTRA: "1" });
    for (const k of Object.keys(env)) assert.ok(["PATH", "HOME", "EXTRA"].includes(k), k);
    assert.equal(env.EXTRA, "1");
    assert.equal(env.PATH, process.env.PATH);
  } finally {
    delete process.env.CHILD_TEST_SECRET;
  }
});

test("messages both ways; a line that is not JSON-RPC is dropped, the next still arrives; stderr in the owner's log; exit code reported once", async () => {
  const { log, records } = recorder();
  const messages: JSONRPCMessage[] = [];
  const exits: ExitInfo[] = [];
  const child = new Child(command(ECHO), log, { message: (m) => void messages.push(m), exit: (e) => void exits.push(e) });
  await child.start();
  assert.ok(child.pid !== undefined && alive(child.pid));
  assert.equal(child.send({ jsonrpc: "2.0", id: 1, method: "x/echo", params: { s: "ü✓" } }), true);
  await waitFor(() => messages.length === 1, 5_000, "the echo");
  assert.deepEqual(messages[0], { jsonrpc: "2.0", id: 1, result: { got: { s: "ü✓" } } });
  assert.ok(
    records.some((r) => r.msg === "stdio child transport error"),
    "the bad line is reported",
  );

  await waitFor(() => records.filter((r) => typeof r.stderr === "string").length >= 3, 5_000, "stderr lines");
  const lines = records.filter((r) => typeof r.stderr === "string");
  assert.equal(lines[0]!.stderr, "up");
  assert.equal(lines[0]!.owner, "test");
  assert.equal((lines[1]!.stderr as string).length, STDERR_LINE_MAX);
  assert.equal(lines[2]!.stderr, "e".repeat(10));

  child.send({ jsonrpc: "2.0", id: 2, method: "x/exit" });
  await within(child.gone, 5_000, "the child to be gone");
  assert.deepEqual(exits, [{ code: 7, signal: null }]);
  assert.equal(child.send({ jsonrpc: "2.0", id: 3, method: "x/echo" }), false, "nothing is written to a child that is gone");
  await child.stop();
  assert.equal(exits.length, 1);
});

test("a command that cannot start: start() rejects, no exit is reported, stop() returns at once", async () => {
  const exits: ExitInfo[] = [];
  const child = new Child({ executable: "/nonexistent/mcp-server-binary", args: [], env: {} }, pino({ level: "silent" }), {
    message: () => {},
    exit: (e) => void exits.push(e),
  });
  await assert.rejects(child.start(), /ENOENT/);
  assert.equal(child.pid, undefined);
  await within(child.stop(), 1_000, "stop of a child that never started");
  assert.deepEqual(exits, []);
});

test("stop(): stdin closed and SIGTERM; a child that ignores both is SIGKILLed after the grace", async () => {
  const exits: ExitInfo[] = [];
  let ready = false;
  const child = new Child(command(STUBBORN), pino({ level: "silent" }), { message: () => void (ready = true), exit: (e) => void exits.push(e) });
  await child.start();
  await waitFor(() => ready, 5_000, "the SIGTERM handler to be in place");
  const pid = child.pid!;
  const t0 = Date.now();
  await within(child.stop(), KILL_GRACE_MS + 3_000, "the stop");
  const took = Date.now() - t0;
  assert.ok(took >= KILL_GRACE_MS - 100, `stopped after ${took} ms, before the grace`);
  assert.ok(!alive(pid));
  assert.deepEqual(exits, [{ code: null, signal: "SIGKILL" }]);
  assert.equal(child.stop(), child.stop(), "one stop");
});

test("stop() while the child is still being spawned ends it once it is there", async () => {
  const exits: ExitInfo[] = [];
  const child = new Child(command(`setInterval(() => {}, 1000);`), pino({ level: "silent" }), { message: () => {}, exit: (e) => void exits.push(e) });
  const started = child.start();
  const stopped = child.stop();
  await started;
  const pid = child.pid!;
  await within(stopped, KILL_GRACE_MS + 3_000, "the stop");
  assert.ok(!alive(pid));
  assert.deepEqual(exits, [{ code: null, signal: "SIGTERM" }]);
});
