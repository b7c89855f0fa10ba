/**
 * Small request bodies (a JSON-RPC call) are gathered before the request goes upstream, so head
 * and body leave in one write; larger ones are still streamed chunk by chunk. A raw TCP upstream
 * records what arrives in its first read and whether it was contacted at all.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, it } from "node:test";
import { GATHERED_BODY_MAX } from "../../../../proxy/server/upstream/http/body.js";
import { LOOPBACK, listen, portOf, shut, startFront } from "../../../support/upstream.js";
import { sleep, waitFor, within } from "../../../support/wait.js";

interface RawUpstream {
  port: number;
  connections: number;
  /** Each request's bytes, as read: reads[i][0] is its first read. */
  reads: Buffer[][];
  /** Set once a request's head has arrived (its first read). */
  headSeen: boolean;
  close(): Promise<void>;
}

/** Answers each request once its Content-Length bytes are in: 200 with the body's length. */
async function rawUpstream(): Promise<RawUpstream> {
  const up: RawUpstream = { port: 0, connections: 0, reads: [], headSeen: false, close: async () => {} };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    up.connections++;
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    let got = Buffer.alloc(0);
    let reads: Buffer[] = [];
    sock.on("data", (chunk: Buffer) => {
      if (reads.length === 0) up.reads.push(reads);
      reads.push(chunk);
      up.headSeen = true;
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(got.subarray(0, end).toString("latin1"))?.[1] ?? 0);
      if (got.length < end + 4 + length) return;
      const answer = `{"length":${length}}`;
      sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${answer.length}\r\n\r\n${answer}`);
      got = got.subarray(end + 4 + length);
      reads = [];
    });
  });
  await listen(server);
  up.port = portOf(server);
  up.close = async () => {
    for (const s of sockets) s.destroy();
    await shut(server);
  };
  return up;
}

/** A client that writes the head and the first `first` body bytes, then (unless `stall`) the rest once `next()` resolves. */
function post(port: number, body: Buffer, first: number, next: () => Promise<void>, stall = false): { done: Promise<{ status: number; text: string }>; socket: net.Socket } {
  const socket = net.connect(port, LOOPBACK);
  const done = new Promise<{ status: number; text: string }>((resolve, reject) => {
    let got = "";
    socket.on("error", reject);
    socket.on("data", (c: Buffer) => {
      got += c.toString("utf8");
      const end = got.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(got)?.[1] ?? -1);
      if (end >= 0 && length >= 0 && got.length >= end + 4 + length) {
        resolve({ status: Number(got.slice(9, 12)), text: got.slice(end + 4, end + 4 + length) });
        socket.destroy();
      }
    });
    socket.on("close", () => resolve({ status: Number(got.slice(9, 12)) || 0, text: got.slice(got.indexOf("\r\n\r\n") + 4) }));
  });
  socket.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
  socket.write(body.subarray(0, first));
  if (!stall) void next().then(() => socket.write(body.subarray(first)));
  return { done, socket };
}

describe("forwarder: small bodies gathered, large ones streamed", () => {
  const opened: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const o of opened) await o.close();
  });

  it("a small body sent in two parts reaches the upstream in one read with its head", async () => {
    const up = await rawUpstream();
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    opened.push(up, front);
    const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { text: "x".repeat(300) } } }));
    // The second part is sent well after the first: streamed, the upstream would have read the head by then.
    const r = post(front.port, body, 40, () => sleep(150));
    const answer = await within(r.done, 5_000, "the answer");
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.text), { length: body.length });
    assert.equal(up.reads.length, 1);
    const first = up.reads[0]![0]!;
    const end = first.indexOf("\r\n\r\n");
    assert.ok(end > 0, "the first read holds the whole head");
    assert.ok(first.subarray(end + 4).equals(body), "and the whole body after it");
  });

  it("a body over the gathering bound is streamed: the upstream has the head before the client sent the rest", async () => {
    const up = await rawUpstream();
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    opened.push(up, front);
    const body = Buffer.alloc(GATHERED_BODY_MAX + 1, 0x61);
    const r = post(front.port, body, 100, () => waitFor(() => up.headSeen, 5_000, "the head upstream before the rest of the body"));
    const answer = await within(r.done, 5_000, "the answer");
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.text), { length: body.length });
  });

  it("a small body that stalls gets 408 after the idle timeout, and the upstream is never contacted", async () => {
    const up = await rawUpstream();
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port }, idleTimeoutMs: 300 });
    opened.push(up, front);
    const r = post(front.port, Buffer.alloc(200, 0x62), 50, async () => {}, true);
    const answer = await within(r.done, 5_000, "the 408");
    assert.equal(answer.status, 408);
    assert.match(JSON.parse(answer.text).error.message, /request body stalled: no data for 300 ms/);
    assert.equal(up.connections, 0);
  });

  it("a client that leaves before its small body is complete: nothing goes upstream", async () => {
    const up = await rawUpstream();
    const front = await startFront({ target: { kind: "http", host: LOOPBACK, port: up.port } });
    opened.push(up, front);
    const r = post(front.port, Buffer.alloc(200, 0x63), 50, async () => {}, true);
    await sleep(100);
    r.socket.destroy();
    await within(r.done, 5_000, "the client's close");
    await sleep(200);
    assert.equal(up.connections, 0);
    assert.equal(up.reads.length, 0);
  });
});
