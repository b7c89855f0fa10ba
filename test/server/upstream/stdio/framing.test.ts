/**
 * The child's stdout framing: lines split anywhere across chunks or many in one, CRLF, the cap
 * (a line over it skipped as it streams, never held, its top-level id read back wherever it stands
 * and whatever decoys are nested or quoted), and a real child whose oversized answer is reported
 * while the child and the lines after it live on.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { Child, childEnv, formatSize, oversizeError } from "../../../../proxy/server/upstream/stdio/child.js";
import { IdScanner, LineReader, type Skipped } from "../../../../proxy/server/upstream/stdio/framing.js";
import { alive, waitFor, within } from "../../../support/wait.js";

function reader(max: number): { r: LineReader; lines: string[]; skipped: Skipped[] } {
  const lines: string[] = [];
  const skipped: Skipped[] = [];
  const r = new LineReader(
    max,
    (l) => void lines.push(l.toString("utf8")),
    (s) => void skipped.push(s),
  );
  return { r, lines, skipped };
}

/** Feeds `text` cut at the given offsets. */
function feed(r: LineReader, text: string | Buffer, cuts: number[]): void {
  const b = Buffer.isBuffer(text) ? text : Buffer.from(text);
  let at = 0;
  for (const c of [...cuts, b.length]) {
    r.push(b.subarray(at, c));
    at = c;
  }
}

function scan(text: string): { id: string | number | null; method: boolean } {
  const s = new IdScanner();
  s.push(Buffer.from(text));
  return s.result();
}

describe("LineReader", () => {
  it("frames lines cut at every byte, many in one chunk, CRLF, blank lines; ü survives a cut inside it", () => {
    const text = '{"a":1}\n{"b":"ü"}\r\n\n  \r\n{"c":[1,2]}\n';
    for (let cut = 0; cut <= Buffer.byteLength(text); cut++) {
      const { r, lines, skipped } = reader(64);
      feed(r, text, [cut]);
      assert.deepEqual(lines, ['{"a":1}', '{"b":"ü"}', '{"c":[1,2]}'], `cut at ${cut}`);
      assert.deepEqual(skipped, []);
    }
    const { r, lines } = reader(64);
    feed(
      r,
      text,
      Array.from({ length: Buffer.byteLength(text) - 1 }, (_, i) => i + 1),
    );
    assert.equal(lines.length, 3, "one byte per chunk");
  });

  it("the cap: exactly max bytes pass (CR not counted), max + 1 is skipped, the next line still arrives", () => {
    const fit = `{"id":1,"x":"${"a".repeat(100 - 15)}"}`;
    assert.equal(fit.length, 100);
    const over = `{"id":2,"x":"${"a".repeat(100 - 14)}"}`;
    const { r, lines, skipped } = reader(100);
    feed(r, `${fit}\r\n${over}\n${fit}\n`, [50, 150, 201]);
    assert.deepEqual(lines, [fit, fit]);
    assert.deepEqual(skipped, [{ id: 2, method: false, bytes: 101 }]);
  });

  it("a line that never ends is held to the cap, not more; its id is read once it ends; the stream goes on", () => {
    const max = 64 * 1024;
    const { r, lines, skipped } = reader(max);
    r.push(Buffer.from('{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"'));
    const chunk = Buffer.alloc(64 * 1024, "x");
    let peak = 0;
    for (let i = 0; i < 1600; i++) {
      r.push(chunk); // 100 MiB in all
      peak = Math.max(peak, r.held);
    }
    assert.ok(peak <= max + 1, `held ${peak} bytes`);
    assert.equal(r.held, 0, "once over the cap nothing is held");
    r.push(Buffer.from('"}]},"id":"req-9"}\n{"jsonrpc":"2.0","id":10,"result":{}}\n'));
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0]!.id, "req-9");
    assert.ok(skipped[0]!.bytes > 100 * 1024 * 1024);
    assert.deepEqual(lines, ['{"jsonrpc":"2.0","id":10,"result":{}}']);
  });

  it("a 20 MiB line in 64 KiB chunks arrives whole under a larger cap", () => {
    const body = "y".repeat(20 * 1024 * 1024);
    const text = Buffer.from(`{"id":1,"result":"${body}"}\n`);
    const { r, lines } = reader(64 * 1024 * 1024);
    for (let at = 0; at < text.length; at += 65_536) r.push(text.subarray(at, at + 65_536));
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.length, text.length - 1);
  });
});

describe("IdScanner", () => {
  const cases: [string, string, string | number | null, boolean][] = [
    ["id first", '{"id":42,"jsonrpc":"2.0","result":{"text":"x"}}', 42, false],
    ["id last", '{"jsonrpc":"2.0","result":{"text":"x"},"id":"abc"}', "abc", false],
    ["id in the middle, spaced", '{ "jsonrpc" : "2.0" ,\t"id" :  -7.5e1 , "error":{"code":1}}', -75, false],
    ["nested decoys", '{"result":{"id":"decoy","list":[{"id":1},["id",{"id":2}]]},"id":3}', 3, false],
    ["a decoy inside a string", '{"result":{"text":"\\"id\\":99, {\\"id\\": 98}"},"id":4}', 4, false],
    ["escaped quotes and backslashes before it", '{"result":"a\\\\\\"b\\\\","id":5}', 5, false],
    ["a string id with escapes", '{"id":"q\\"\\u00fc\\\\","result":{}}', 'q"ü\\', false],
    ["a key spelled with an escape", '{"i\\u0064":6,"result":{}}', 6, false],
    ["duplicate ids: the last, as JSON.parse", '{"id":1,"result":{},"id":2}', 2, false],
    ["id null", '{"id":null,"error":{"code":-32700,"message":"x"}}', null, false],
    ["id an object is no id", '{"id":{"a":1},"result":{}}', null, false],
    ["no id: a notification", '{"jsonrpc":"2.0","method":"notifications/message","params":{"id":9}}', null, true],
    ["a request of the child's", '{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}', "s1", true],
    ["a batch is not an object", '[{"id":1}]', null, false],
    ["not JSON", 'hello "id": 5', null, false],
    ["an id key that is a prefix", '{"idx":1,"ids":[2],"id":8}', 8, false],
    ["booleans and nulls of other keys", '{"a":true,"b":null,"c":false,"id":0}', 0, false],
  ];
  for (const [name, text, id, method] of cases) {
    it(`${name}: whole, and cut at every byte`, () => {
      assert.deepEqual(scan(text), { id, method });
      const b = Buffer.from(text);
      for (let cut = 0; cut <= b.length; cut++) {
        const s = new IdScanner();
        s.push(b.subarray(0, cut));
        s.push(b.subarray(cut));
        assert.deepEqual(s.result(), { id, method }, `cut at ${cut}`);
      }
    });
  }

  it("an id too long to keep is no id, and is not held", () => {
    assert.deepEqual(scan(`{"result":{},"id":"${"z".repeat(5000)}"}`), { id: null, method: false });
  });
});

/** Answers `x/big` with a line of `n` bytes, any other request with the length of its params. */
const BIG = String.raw`
let parts = [];
const handle = (m) => {
  if (m.method === "x/big") process.stdout.write(JSON.stringify({ jsonrpc: "2.0", result: { pad: "p".repeat(m.params.n) }, id: m.id }) + "\n");
  else process.stdout.write(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { length: JSON.stringify(m.params).length } }) + "\n");
};
process.stdin.on("data", (c) => {
  let at = 0, nl;
  while ((nl = c.indexOf(10, at)) >= 0) {
    parts.push(c.subarray(at, nl));
    handle(JSON.parse(Buffer.concat(parts).toString()));
    parts = [];
    at = nl + 1;
  }
  parts.push(c.subarray(at));
});
`;

describe("Child and upstream.maxMessageSize", () => {
  it("an answer over the cap is reported with its request's id; the child and the next answer live on; a big request goes in whole", async () => {
    const messages: JSONRPCMessage[] = [];
    const over: [string | number | null, number, boolean][] = [];
    const child = new Child({ executable: process.execPath, args: ["-e", BIG], env: childEnv(undefined), maxMessageSize: 1024 * 1024 }, pino({ level: "silent" }), {
      message: (m) => void messages.push(m),
      exit: () => {},
      onOversize: (id, bytes, method) => void over.push([id, bytes, method]),
    });
    await child.start();
    try {
      child.send({ jsonrpc: "2.0", id: "big-1", method: "x/big", params: { n: 3 * 1024 * 1024 } });
      child.send({ jsonrpc: "2.0", id: 2, method: "x/echo", params: { s: "s".repeat(12 * 1024 * 1024) } });
      await waitFor(() => messages.length === 1, 15_000, "the answer after the oversized one");
      assert.equal(over.length, 1);
      assert.equal(over[0]![0], "big-1");
      assert.ok(over[0]![1] > 3 * 1024 * 1024);
      assert.equal(over[0]![2], false);
      assert.deepEqual(messages[0], { jsonrpc: "2.0", id: 2, result: { length: 12 * 1024 * 1024 + 8 } }, "a 12 MiB request reaches the child whole");
      assert.ok(child.pid !== undefined && alive(child.pid));
    } finally {
      await within(child.stop(), 10_000, "stop");
    }
  });

  it("the error that stands in for it names the key and the size", () => {
    assert.equal(formatSize(64 * 1024 * 1024), "64 MiB");
    assert.equal(formatSize(1536), "1.5 KiB");
    assert.deepEqual(oversizeError(7, 1024 * 1024), {
      jsonrpc: "2.0",
      id: 7,
      error: { code: -32603, message: "message from the MCP server exceeds upstream.maxMessageSize (1 MiB)" },
    });
  });
});
