/**
 * The upgrade desync, as an attacker plays it against a spawned `serve`: an Upgrade request that
 * announces a body it never sends (Content-Length: 200), an upstream that refuses the upgrade at
 * once and then reads that many bytes of body, and a victim's Upgrade request (Authorization
 * included) next. The upstream here is a raw TCP server that frames requests by their own
 * Content-Length, as such servers do. The upstream must never receive one client's bytes inside
 * another's request: the body-bearing Upgrade is refused (400) before anything goes upstream, and
 * an upstream connection that saw a refused upgrade is not reused.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { spawnServe, type SpawnedServe, rawExchange } from "../support/robust.js";
import { listen, portOf, shut } from "../support/upstream.js";

interface Seen {
  head: string;
  body: string;
}

/** Per upstream connection, the requests it read (head, and the body its Content-Length claimed). */
const connections: Seen[][] = [];
const upstream = net.createServer((sock) => {
  const requests: Seen[] = [];
  connections.push(requests);
  let buf = "";
  let owed = 0;
  sock.on("data", (d: Buffer) => {
    buf += d.toString("latin1");
    for (;;) {
      if (owed > 0) {
        const take = buf.slice(0, owed);
        requests[requests.length - 1]!.body += take;
        owed -= take.length;
        buf = buf.slice(take.length);
        if (owed > 0) return;
      }
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.slice(0, end);
      buf = buf.slice(end + 4);
      requests.push({ head, body: "" });
      owed = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      // Refuses the upgrade at once, before any body: the connection stays open for the next request.
      sock.write("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden");
    }
  });
  sock.on("error", () => {});
});

/** One raw request on a pinned TLS connection; resolves with the status code (0: none before the close). */
async function send(s: SpawnedServe, text: string): Promise<number> {
  const got = await rawExchange(s, text, (g) => g.includes("\r\n\r\n"), 15_000);
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0);
}

const upgradeHead = (extra: string): string =>
  `GET /ws HTTP/1.1\r\nHost: robust\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

let serve: SpawnedServe | undefined;
before(async () => {
  await listen(upstream);
  serve = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(upstream)}", headersTimeout: 3s }\n`);
});
after(async () => {
  await serve?.stop();
  await shut(upstream);
});

describe("Upgrade desync", { timeout: 60_000 }, () => {
  it("an Upgrade announcing a body is refused (400) before anything goes upstream; the victim's request that follows is read as its own, on its own connection", async () => {
    connections.length = 0;
    assert.equal(await send(serve!, upgradeHead("Content-Length: 200\r\n")), 400);
    assert.equal(await send(serve!, upgradeHead("Transfer-Encoding: chunked\r\n")), 400);
    assert.equal(connections.flat().length, 0, "nothing of the refused requests went upstream");
    // The victim: the upstream's own answer, not a 504 after its bytes were swallowed as a body.
    assert.equal(await send(serve!, upgradeHead("Authorization: Bearer victim-secret\r\n")), 403);
    const all = connections.flat();
    assert.equal(all.length, 1);
    assert.match(all[0]!.head, /Authorization: Bearer victim-secret/);
    assert.equal(all[0]!.body, "");
  });

  it("after a refused (non-101) upgrade the upstream connection is not reused: each request comes on a connection of its own, no bytes inside another's", async () => {
    connections.length = 0;
    const statuses: number[] = [];
    for (const who of ["alice", "bob", "carol"]) statuses.push(await send(serve!, upgradeHead(`Authorization: Bearer ${who}\r\n`)));
    assert.deepEqual(statuses, [403, 403, 403]);
    assert.equal(connections.length, 3, "one upstream connection per upgrade request");
    for (const [i, c] of connections.entries()) {
      assert.equal(c.length, 1, `connection ${i} carried ${c.length} requests`);
      assert.equal(c[0]!.body, "", `connection ${i}: bytes after the head`);
    }
    assert.deepEqual(
      connections.map((c) => /Bearer (\w+)/.exec(c[0]!.head)?.[1]),
      ["alice", "bob", "carol"],
    );
  });
});
