/**
 * bridge --listen in front of serve with a stdio upstream (the v2 test server as the child, both
 * eras): a v2 client, pinned to 2026-07-28 and in auto, reaches the modern pool through the byte
 * relay, with every check a v2 client makes on the other paths.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { startHttpBridge, type HttpBridge } from "../../../proxy/client/bridge/listen.js";
import { connectHttp, type Connected, type Mode } from "../../support/mcp2/client.js";
import { SERVER_JS } from "../../support/mcp2/spawn.js";
import { tempDir, within } from "../../support/wait.js";
import { policyFor, startDevServe, type Served } from "../harness.js";
import { v2ClientChecks } from "../mcp2-http.js";

describe("bridge --listen → serve → v2 server as a stdio child (--era dual)", { timeout: 180_000 }, () => {
  const cancelLog = join(tempDir("amcp-listen-stdio-"), "cancel.log");
  let served: Served | undefined;
  let bridge: HttpBridge | undefined;
  before(async () => {
    writeFileSync(cancelLog, "");
    served = await startDevServe(`upstream: { command: ["${process.execPath}", "${SERVER_JS}", "--stdio", "--era", "dual"], env: { MCP2_CANCEL_LOG: "${cancelLog}" } }\n`);
    const policy = await policyFor(served, { freshness: "certificate" });
    bridge = await startHttpBridge({ remote: new URL(`${served.base}/mcp`), policy, log: () => {}, listen: { host: "127.0.0.1", port: 0 } });
  });
  after(async () => {
    await bridge?.close();
    await served?.close();
  });
  for (const mode of ["pin", "auto"] as Mode[]) {
    describe(`v2 client, ${mode}`, () => {
      let c: Connected<unknown> | undefined;
      before(async () => {
        c = await within(connectHttp(`http://127.0.0.1:${bridge!.address.port}/mcp`, { mode }), 30_000, `connect (${mode}) through the bridge`);
      });
      after(() => within(c?.close() ?? Promise.resolve(), 10_000, "close").catch(() => {}));
      v2ClientChecks(
        () => c!,
        () => cancelLog,
      );
    });
  }
});
