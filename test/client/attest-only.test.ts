/**
 * attestedFetch's `attestOnly`: the one origin whose requests are attested, every other one
 * fetched as usual (an OAuth authorization server); without it every request is attested.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { attestedFetch, ConnectorError, type ConnectionVerdict } from "../../proxy/client/connector.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { countingUpstream, policyFor, startDevServe, type CountingUpstream, type Served } from "./harness.js";

describe("attestedFetch({ attestOnly })", { timeout: 60_000 }, () => {
  let up: CountingUpstream;
  let served: Served;
  let other: Upstream;
  before(async () => {
    up = await countingUpstream();
    served = await startDevServe(`upstream: { url: "http://127.0.0.1:${up.port}" }\n`);
    other = await startUpstream((_req, res) => res.end('{"issuer":"plain"}'));
  });
  after(async () => {
    await served?.close();
    await up?.close();
    await other?.close();
  });

  it("attests requests to that origin and fetches every other origin as usual", async () => {
    const verdicts: ConnectionVerdict[] = [];
    const f = attestedFetch({ policy: await policyFor(served), attestOnly: `${served.base}/mcp`, onVerdict: (v) => verdicts.push(v) });
    try {
      const plain = await f(`http://127.0.0.1:${other.port}/.well-known/oauth-authorization-server`);
      assert.deepEqual(await plain.json(), { issuer: "plain" });
      assert.equal(verdicts.length, 0, "no attestation for another origin");
      const attested = await f(`${served.base}/mcp`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      await attested.arrayBuffer();
      assert.equal(attested.status, 200);
      assert.equal(verdicts.length, 1);
      assert.ok(verdicts[0]!.ok);
    } finally {
      await f.close();
    }
  });

  it("without it, an http: URL is refused before anything is sent", async () => {
    const f = attestedFetch(await policyFor(served));
    try {
      await assert.rejects(f(`http://127.0.0.1:${other.port}/`), (e: unknown) => e instanceof ConnectorError && e.code === "INSECURE_URL");
    } finally {
      await f.close();
    }
  });

  it("an attestOnly that is not an https: URL is refused when the fetch is made", async () => {
    const policy = await policyFor(served);
    assert.throws(
      () => attestedFetch({ policy, attestOnly: `http://127.0.0.1:${other.port}` }),
      (e: unknown) => e instanceof ConnectorError && e.code === "INSECURE_URL",
    );
    assert.throws(
      () => attestedFetch({ policy, attestOnly: "not a url" }),
      (e: unknown) => e instanceof ConnectorError && e.code === "URL_INVALID" && /attestOnly: not a URL/.test(e.message),
    );
  });
});
