/**
 * `serve` starts every listener it was asked for or none: with the metrics port taken it exits 1
 * naming the cause (it used to keep serving without metrics); `metrics: null` at the top level
 * disables metrics (it used to be ignored, leaving them on 9464); and Node's process metrics keep
 * their standard names, which dashboards expect (not attestable_mcp_process_process_…).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../../proxy/server/config.js";
import { devDir, scrape, spawnServe, type SpawnedServe } from "../support/robust.js";
import { listen, shut } from "../support/upstream.js";
import { CLI, REPO } from "../support/vectors.js";
import { eventually, tempDir, within } from "../support/wait.js";

const dir = tempDir("amcp-lifecycle-");
let n = 0;

/** `serve` with this YAML (dev attestation, a loopback HTTP upstream that need not exist); resolves on its exit or once it serves. */
async function run(yaml: string): Promise<{ code: number | null; output: string; stop(): Promise<void> }> {
  const file = join(dir, `serve-${n++}.yaml`);
  writeFileSync(file, `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir()}" } }\ncertificate: { keyType: P-256 }\nupstream: { url: "http://127.0.0.1:9" }\n${yaml}`);
  const child = spawn(process.execPath, [CLI, "serve", "--config", file], { cwd: REPO, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  let code: number | null = null;
  void exited.then((c) => (code = c));
  await eventually(() => code !== null || /serving https:\/\//.test(output), 20_000);
  return {
    get code() {
      return code;
    },
    get output() {
      return output;
    },
    stop: async () => {
      if (code !== null) return;
      child.kill("SIGTERM");
      await within(exited, 15_000, "serve exit");
    },
  };
}

describe("serve: listeners and metrics", { timeout: 90_000 }, () => {
  const taken = net.createServer();
  let served: SpawnedServe | undefined;
  before(async () => {
    await listen(taken);
  });
  after(async () => {
    await served?.stop();
    await shut(taken);
  });

  it("the metrics port taken: serve exits 1 (it does not serve without the metrics it was told to serve), naming EADDRINUSE", async () => {
    const port = (taken.address() as net.AddressInfo).port;
    const r = await run(`metrics: { listen: "127.0.0.1:${port}" }\n`);
    try {
      assert.ok(await eventually(() => r.code !== null, 10_000), `serve kept running:\n${r.output}`);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, /EADDRINUSE/);
    } finally {
      await r.stop();
    }
  });

  it("`metrics: null` at the top level disables metrics, as `metrics.listen: null` does", async () => {
    const c = await loadConfig({
      file: null,
      sets: [
        ["attestation.provider", "dev"],
        ["upstream.url", '"http://127.0.0.1:9"'],
      ],
    });
    assert.notEqual(c.metrics.listen, null, "on by default");
    const file = join(dir, "metrics-null.yaml");
    writeFileSync(file, 'attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:9" }\nmetrics: null\n');
    assert.equal((await loadConfig({ file })).metrics.listen, null);
    const r = await run("metrics: null\n");
    try {
      assert.equal(r.code, null, r.output);
      assert.match(r.output, /serving https:\/\//);
      assert.doesNotMatch(r.output, /\/metrics/, "the banner names no metrics listener");
    } finally {
      await r.stop();
    }
  });

  it("Node's process metrics have their standard names: process_cpu_seconds_total, nodejs_*; no doubled prefix", async () => {
    served = await spawnServe('upstream: { url: "http://127.0.0.1:9" }\n');
    const text = await scrape(served.metricsPort);
    assert.match(text, /^process_cpu_seconds_total \d/m);
    assert.match(text, /^process_resident_memory_bytes \d/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds \d/m);
    assert.doesNotMatch(text, /attestable_mcp_process_/);
    assert.match(text, /^# TYPE attestable_mcp_share_refusals_total counter/m);
  });
});
