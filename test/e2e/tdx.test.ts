/**
 * serve as a dev TDX trust domain (`attestation.dev.tee: tdx`), end to end: the CLI serve with
 * server-everything over stdio, its banner and the dev policy it writes, the RA-TLS certificate it
 * serves (the TDX quote in the TCG extension alone), then `attestable-mcp verify` with TDX
 * policies, `bridge` and attestedFetch with the official MCP SDK client.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { attestedFetch, type ConnectionVerdict } from "../../proxy/client/connector.js";
import { parseCertificate } from "../../proxy/evidence/asn1/x509.js";
import { loadPolicy } from "../../proxy/evidence/policy.js";
import { readRaTls } from "../../proxy/evidence/ratls/read.js";
import { verifyRaTlsCertificate } from "../../proxy/evidence/ratls/verify.js";
import { EVERYTHING } from "../support/everything.js";
import { servedCertificate } from "../support/tls-client.js";
import { CLI, REPO } from "../support/vectors.js";
import { runCli } from "../support/cli.js";
import { eventually, tempDir, within } from "../support/wait.js";

interface Td {
  mrtd: string;
  rtmr: string[];
  mrconfigid: string;
}

const flip = (hex: string) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);

describe("serve with attestation.dev.tee: tdx", { timeout: 120_000 }, () => {
  const dir = tempDir("amcp-tdx-e2e-");
  const devDir = join(dir, "dev");
  const rootFile = join(devDir, "root.pem");
  let child: ChildProcess | undefined;
  let out = "";
  let base = "";
  let td: Td;
  let n = 0;
  /** A TDX policy for this server; `entry` is merged over { mrtd } and `top` over the rest. */
  const policyFile = (entry: Record<string, unknown> = {}, top: Record<string, unknown> = {}): string => {
    const p = join(dir, `policy-${n++}.yaml`);
    writeFileSync(p, stringify({ trustRoots: [rootFile], measurements: [{ mrtd: td.mrtd, ...entry }], allowDebug: true, tcb: { require: false }, freshness: "exporter", ...top }));
    return p;
  };

  before(async () => {
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}", tee: tdx } }\ncertificate: { keyType: P-256 }\nmetrics: { listen: null }\nlog: { level: warn }\nshutdown: { drain: 1s }\nupstream: { command: ["${process.execPath}", "${EVERYTHING}", "stdio"], maxSessions: 4 }\n`,
    );
    child = spawn(process.execPath, [CLI, "serve", "--config", file], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => (out += d.toString("utf8")));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString("utf8")));
    const started = await eventually(() => /serving https:\/\/127\.0\.0\.1:\d+/.test(out) || child!.exitCode !== null, 20_000);
    const port = Number(/serving https:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
    assert.ok(started && port > 0, `serve did not start:\n${out}`);
    base = `https://127.0.0.1:${port}`;
    const v = await verifyRaTlsCertificate(await servedCertificate("127.0.0.1", port), { trustRoots: [readFileSync(rootFile, "utf8")] });
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.quote?.teeType, "TDX");
    if (v.quote?.teeType !== "TDX") return;
    td = { mrtd: v.quote.mrtd, rtmr: v.quote.rtmr, mrconfigid: v.quote.mrconfigid };
  });

  after(async () => {
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child!.once("exit", r));
    child.kill("SIGTERM");
    await within(gone, 10_000, "serve exit").catch(() => child!.kill("SIGKILL"));
  });

  it("banner shows the MRTD served, the dev policy pins it, the certificate carries the TDX quote in the TCG extension only", async () => {
    assert.match(out, new RegExp(`measurement: +mrtd ${td.mrtd} \\(dev: DEBUG TD`));
    assert.equal(td.mrtd.length, 96);
    assert.match(out, /dev attestation provider: .*trust domain is marked DEBUG/);
    const policy = readFileSync(join(devDir, "policy.yaml"), "utf8");
    assert.match(policy, new RegExp(`^measurements: \\[\\{ mrtd: "${td.mrtd}" \\}\\]$`, "m"));
    assert.match(out, new RegExp(`verify ${base}/mcp --policy ${join(devDir, "policy.yaml")}`));
    const ev = readRaTls(parseCertificate(await servedCertificate("127.0.0.1", Number(new URL(base).port))));
    assert.deepEqual(
      ev.extensions.filter((e) => e.kind !== "x509").map((e) => e.kind),
      ["tcg-tagged-evidence"],
    );
  });

  // From here on the TDX policy entries (mrtd, rtmr0–3, mrconfigid) are needed.
  it("verify: the TDX policy (dev root, the served MRTD, RTMRs, MRCONFIGID) exits 0; a wrong MRTD, a wrong RTMR and a DEBUG TD without allowDebug each exit 1 naming the check", async () => {
    const pinned = policyFile({ rtmr0: td.rtmr[0], rtmr1: td.rtmr[1], rtmr2: td.rtmr[2], rtmr3: td.rtmr[3], mrconfigid: td.mrconfigid });
    const [full, mrtd, rtmr, debug] = await Promise.all([
      runCli(["verify", `${base}/mcp`, "--policy", pinned]),
      runCli(["verify", `${base}/mcp`, "--policy", policyFile({ mrtd: flip(td.mrtd) }), "--json"]),
      runCli(["verify", `${base}/mcp`, "--policy", policyFile({ rtmr1: flip(td.rtmr[1]!) }), "--json"]),
      runCli(["verify", `${base}/mcp`, "--policy", policyFile({}, { allowDebug: false }), "--json"]),
    ]);
    assert.equal(full.code, 0, full.stdout + full.stderr);
    assert.match(full.stdout, /Verdict: TRUSTED/);
    assert.match(full.stdout, /ok\s+freshness\.quote/);
    const failed = (r: { stdout: string }) => (JSON.parse(r.stdout) as { ok: boolean; failed: { check: string; reason: string } }).failed;
    assert.equal(mrtd.code, 1, mrtd.stderr);
    assert.equal(failed(mrtd).check, "policy.measurement");
    assert.match(failed(mrtd).reason, /mrtd/i);
    assert.equal(rtmr.code, 1, rtmr.stderr);
    assert.equal(failed(rtmr).check, "policy.measurement");
    assert.match(failed(rtmr).reason, /rtmr1/i);
    assert.equal(debug.code, 1, debug.stderr);
    assert.equal(failed(debug).check, "policy.debug");
  });

  it("bridge --stdio and attestedFetch with the TDX policy: the SDK client calls echo through the bridge, and lists tools over attestedFetch with the TD's verdict", async () => {
    await Promise.all([viaBridge(), viaAttestedFetch()]);
  });

  const viaBridge = async (): Promise<void> => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, "bridge", "--remote", `${base}/mcp`, "--policy", policyFile(), "--stdio"], stderr: "pipe" });
    let err = "";
    transport.stderr?.on("data", (d: Buffer) => (err += d.toString("utf8")));
    const client = new Client({ name: "tdx-bridge", version: "1.0.0" });
    try {
      await within(client.connect(transport), 20_000, `initialize through the bridge (stderr: ${err})`);
      const echo = await within(client.callTool({ name: "echo", arguments: { message: "to a trust domain" } }), 10_000, "echo");
      assert.match(JSON.stringify(echo.content), /to a trust domain/);
    } finally {
      await client.close();
    }
  };

  const viaAttestedFetch = async (): Promise<void> => {
    const verdicts: ConnectionVerdict[] = [];
    const fetch = attestedFetch({ policy: await loadPolicy(policyFile()), onVerdict: (v) => verdicts.push(v) });
    const client = new Client({ name: "tdx-attested", version: "1.0.0" });
    try {
      await within(client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { fetch })), 20_000, "initialize");
      const tools = await within(client.listTools(), 10_000, "tools/list");
      assert.ok(tools.tools.some((t) => t.name === "echo"));
    } finally {
      await client.close();
      await fetch.close();
    }
    assert.ok(verdicts.length >= 1);
    const v = verdicts[0]!;
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.quote?.teeType, "TDX");
    assert.equal(v.quote?.teeType === "TDX" ? v.quote.mrtd : "", td.mrtd);
  };
});
