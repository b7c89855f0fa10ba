/**
 * limits.maxConnections and limits.maxConnectionsPerClient against a spawned `serve`, with real
 * TLS connections from distinct loopback addresses (127.0.0.1, .2, .3: Linux answers the whole
 * 127/8): a client past its share, and anyone past the cap, is closed at once without a handshake
 * and counted; connections held below the bounds keep working, and a freed slot is usable again.
 */
import assert from "node:assert/strict";
import { type ConnectionOptions, connect as tlsConnect, type TLSSocket } from "node:tls";
import { after, before, describe, it } from "node:test";
import { createRobustUpstream } from "../support/robust-upstream.js";
import { metric, scrape, spawnServe, type SpawnedServe } from "../support/robust.js";
import { listen, portOf, shut } from "../support/upstream.js";
import { eventually, within } from "../support/wait.js";

const up = createRobustUpstream();
let serve: SpawnedServe | undefined;
const open: TLSSocket[] = [];

before(async () => {
  await listen(up.server);
  serve = await spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(up.server)}" }\nlimits: { maxConnections: 6, maxConnectionsPerClient: 3 }\n`);
});
after(async () => {
  for (const s of open) s.destroy();
  await serve?.stop();
  await shut(up.server);
});

/** A TLS connection from `localAddress`: the socket once the handshake is done, or null when it was closed first. */
function connectFrom(localAddress: string): Promise<TLSSocket | null> {
  return within(
    new Promise((resolve) => {
      // localAddress is passed on to net.connect (Node's tls typings leave it out).
      const options = { host: "127.0.0.1", port: serve!.port, localAddress, ca: serve!.certPem, checkServerIdentity: () => undefined } as ConnectionOptions;
      const s = tlsConnect(options, () => {
        open.push(s);
        resolve(s);
      });
      s.on("error", () => {});
      s.once("close", () => resolve(null));
    }),
    10_000,
    `TLS connection from ${localAddress}`,
  );
}

/** One request on a held connection: its status line. */
function ask(s: TLSSocket): Promise<string> {
  return within(
    new Promise((resolve) => {
      let got = "";
      const onData = (d: Buffer): void => {
        got += d.toString("latin1");
        if (got.includes("\r\n\r\n")) {
          s.off("data", onData);
          resolve(got.split("\r\n", 1)[0]!);
        }
      };
      s.on("data", onData);
      s.write("GET /healthz HTTP/1.1\r\nHost: robust\r\n\r\n");
    }),
    10_000,
    "request on a held connection",
  );
}

describe("connection shares and cap", { timeout: 60_000 }, () => {
  it("a 4th connection from one address is closed at once (its share is 3); a 7th from anyone is (the cap is 6); held ones keep working; a freed slot admits again", async () => {
    const a = await Promise.all([connectFrom("127.0.0.1"), connectFrom("127.0.0.1"), connectFrom("127.0.0.1")]);
    assert.ok(
      a.every((s) => s !== null),
      "three from 127.0.0.1 are admitted",
    );
    assert.equal(await connectFrom("127.0.0.1"), null, "a fourth from 127.0.0.1 is past its share");
    const b = await Promise.all([connectFrom("127.0.0.2"), connectFrom("127.0.0.2"), connectFrom("127.0.0.2")]);
    assert.ok(
      b.every((s) => s !== null),
      "another address has its own share",
    );
    assert.equal(await connectFrom("127.0.0.3"), null, "a seventh connection is past the cap");
    for (const s of [a[0]!, b[2]!]) assert.match(await ask(s), /^HTTP\/1\.1 200 /);

    const text = await scrape(serve!.metricsPort);
    assert.equal(metric(text, "attestable_mcp_share_refusals_total", 'resource="connection",scope="client"'), 1);
    assert.equal(metric(text, "attestable_mcp_share_refusals_total", 'resource="connection",scope="global"'), 1);
    assert.equal(metric(text, "attestable_mcp_tls_handshakes_total", 'result="failed"'), 0, "a refused connection is not a failed handshake");

    a[1]!.destroy();
    assert.ok(await eventually(async () => (await connectFrom("127.0.0.3")) !== null, 5000), "a freed slot admits a new client");
  });
});
