/**
 * `attestable-mcp bridge`, end to end: the CLI as a child process, `serve` in-process with the dev
 * provider, server-everything behind it, and the official MCP SDK client on the local side (stdio
 * for desktop clients, plain Streamable HTTP on loopback). The remote is verified before anything
 * is forwarded; a later certificate is verified again; a rejection ends the bridge with exit 1.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DevProvider } from "../../../proxy/attest/dev/provider.js";
import type { AttestationProvider } from "../../../proxy/attest/provider.js";
import { loadConfig } from "../../../proxy/server/config.js";
import { verifyRaTlsCertificate } from "../../../proxy/evidence/ratls/verify.js";
import { startServer, type RunningServer } from "../../../proxy/server/listener.js";
import { assertStreamedProgress, EVERYTHING, startEverythingHttp } from "../../support/everything.js";
import { servedCertificate } from "../../support/tls-client.js";
import { freePort, listen, portOf, shut } from "../../support/upstream.js";
import { CLI } from "../../support/vectors.js";
import { sleep, tempDir, within } from "../../support/wait.js";

const silent = pino({ level: "silent" });

interface Remote {
  running: RunningServer;
  url: string;
  devDir: string;
  rootFile: string;
  mrenclave: string;
  /** Methods of every request the proxy received (the evidence endpoint included). */
  methods: string[];
  /** TCP connections the proxy accepted. */
  connections: () => number;
  /** Quotes from now on come from this provider (the next rotation mints with it). */
  useProvider(p: DevProvider): void;
}

/** serve in-process with a dev provider that can be swapped, e.g. for one with another MRENCLAVE. */
async function startRemote(upstreamYaml: string): Promise<Remote> {
  const devDir = join(tempDir("amcp-bridge-dev-"), "dev");
  const file = join(tempDir("amcp-bridge-serve-"), "serve.yaml");
  writeFileSync(file, `listen: "127.0.0.1:0"\nattestation: { provider: dev, dev: { dir: "${devDir}" } }\nmetrics: { listen: null }\nlog: { level: silent }\nshutdown: { drain: 1s }\n${upstreamYaml}`);
  const config = await loadConfig({ file });
  let current = await DevProvider.open({ dir: devDir, warn: () => {} });
  const swappable: AttestationProvider = { name: "dev", dev: true, quote: (rd) => current.quote(rd) };
  const running = await startServer(config, swappable, silent);
  const methods: string[] = [];
  running.server.on("request", (req: IncomingMessage) => methods.push(`${req.method} ${(req.url ?? "").split("?", 1)[0]}`));
  let connections = 0;
  running.server.on("connection", () => connections++);
  const verdict = await verifyRaTlsCertificate(await servedCertificate("127.0.0.1", running.address.port), { trustRoots: [current.rootPem] });
  assert.equal(verdict.ok, true, JSON.stringify(verdict.failed));
  assert.equal(verdict.quote?.teeType, "SGX");
  const rootFile = join(tempDir("amcp-bridge-root-"), "root.pem");
  writeFileSync(rootFile, current.rootPem);
  return {
    running,
    url: `https://127.0.0.1:${running.address.port}/mcp`,
    devDir,
    rootFile,
    mrenclave: verdict.quote.teeType === "SGX" ? verdict.quote.mrenclave : "",
    methods,
    connections: () => connections,
    useProvider: (p) => {
      current = p;
    },
  };
}

function policyFile(r: Remote, opts: { mrenclave?: string; extra?: string } = {}): string {
  const p = join(tempDir("amcp-bridge-policy-"), "policy.yaml");
  writeFileSync(
    p,
    `trustRoots: ["${r.rootFile}"]\nmeasurements:\n  - { mrenclave: "${opts.mrenclave ?? r.mrenclave}" }\nallowDebug: true\ntcb: { require: false }\nfreshness: exporter\n${opts.extra ?? ""}`,
  );
  return p;
}

interface Bridge {
  child: ChildProcess;
  stderr: () => string;
  /** The exit code, within `ms` (the child is killed past it). */
  exit(ms?: number): Promise<number | null>;
  stop(): Promise<number | null>;
}

const children = new Set<ChildProcess>();

function spawnBridge(args: string[], stdin: "pipe" | "ignore" = "ignore"): Bridge {
  const child = spawn(process.execPath, [CLI, "bridge", ...args], { stdio: [stdin, "pipe", "pipe"] });
  children.add(child);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString("utf8")));
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  exited.then(
    () => children.delete(child),
    () => {},
  );
  const exit = async (ms = 15_000): Promise<number | null> => {
    try {
      return await within(exited, ms, `bridge exit (stderr: ${err})`);
    } catch (e) {
      child.kill("SIGKILL");
      throw e;
    }
  };
  return {
    child,
    stderr: () => err,
    exit,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exit(8000);
    },
  };
}

/** Starts `bridge --listen` and resolves with its port once it says where it listens. */
async function listenBridge(r: Remote, policy: string, listenAt = "127.0.0.1:0"): Promise<Bridge & { port: number }> {
  const b = spawnBridge(["--remote", r.url, "--policy", policy, "--listen", listenAt]);
  const port = await within(
    (async () => {
      for (;;) {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(b.stderr());
        if (m) return Number(m[1]);
        if (b.child.exitCode !== null) throw new Error(`the bridge exited ${b.child.exitCode}: ${b.stderr()}`);
        await sleep(25);
      }
    })(),
    20_000,
    "the bridge listening",
  ).catch(async (e: unknown) => {
    await b.stop().catch(() => {});
    throw e;
  });
  return { ...b, port };
}

function rawPost(port: number, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, path: "/mcp", method: "POST", agent: false, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers } },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString("utf8")));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    }),
    15_000,
    "POST through the bridge",
  );
}

const INITIALIZE = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });

after(() => {
  for (const c of children) c.kill("SIGKILL");
});

describe("bridge with a stdio upstream behind serve", { timeout: 120_000 }, () => {
  let r: Remote | undefined;
  before(async () => {
    r = await startRemote(`upstream: { command: ["${process.execPath}", "${EVERYTHING}", "stdio"], maxSessions: 4 }\n`);
  });
  after(() => r?.running.close());

  it("--stdio: the SDK's StdioClientTransport lists tools and calls echo; closing stdin ends the remote session (DELETE)", async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, "bridge", "--remote", r!.url, "--policy", policyFile(r!), "--stdio"], stderr: "pipe" });
    let err = "";
    transport.stderr?.on("data", (d: Buffer) => (err += d.toString("utf8")));
    const client = new Client({ name: "bridge-stdio", version: "1.0.0" });
    const seen0 = r!.methods.length;
    try {
      await within(client.connect(transport), 20_000, "initialize through the stdio bridge");
      const tools = await within(client.listTools(), 10_000, "tools/list");
      assert.ok(
        tools.tools.some((t) => t.name === "echo"),
        JSON.stringify(tools.tools.map((t) => t.name)),
      );
      const echo = await within(client.callTool({ name: "echo", arguments: { message: "over the verified bridge" } }), 10_000, "echo");
      assert.match(JSON.stringify(echo.content), /over the verified bridge/);
      assert.match(err, new RegExp(`remote verified: mrenclave ${r!.mrenclave}`));
    } finally {
      await client.close(); // closes the bridge's stdin
    }
    const deadline = Date.now() + 8000;
    while (!r!.methods.slice(seen0).includes("DELETE /mcp") && Date.now() < deadline) await sleep(50);
    assert.ok(r!.methods.slice(seen0).includes("DELETE /mcp"), `requests seen: ${r!.methods.slice(seen0).join(", ")}; stderr: ${err}`);
    assert.match(err, /stdin closed/);
  });

  it("--listen 127.0.0.1:0: the SDK client over plain HTTP initializes, lists tools and streams progress", async () => {
    const b = await listenBridge(r!, policyFile(r!));
    try {
      const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${b.port}/mcp`));
      const client = new Client({ name: "bridge-http", version: "1.0.0" });
      await within(client.connect(transport), 20_000, "initialize through the HTTP bridge");
      try {
        const tools = await within(client.listTools(), 10_000, "tools/list");
        assert.ok(tools.tools.some((t) => t.name === "trigger-long-running-operation"));
        await assertStreamedProgress(client);
        await transport.terminateSession();
      } finally {
        await client.close();
      }
      // A browser page that reaches loopback (DNS rebinding, cross-origin fetch) is refused.
      const foreign = await rawPost(b.port, INITIALIZE, { origin: "http://attacker.example" });
      assert.equal(foreign.status, 403);
      assert.equal(await b.stop(), 0, b.stderr());
    } finally {
      await b.stop();
    }
  });

  it("--listen on a non-loopback address exits 2 before contacting the remote", async () => {
    const seen0 = r!.methods.length;
    const b = spawnBridge(["--remote", r!.url, "--policy", policyFile(r!), "--listen", "0.0.0.0:0"]);
    assert.equal(await b.exit(), 2);
    assert.match(b.stderr(), /LISTEN_NOT_LOOPBACK.*0\.0\.0\.0 is not a loopback address/);
    assert.equal(r!.methods.length, seen0);
  });

  it("usage and start-up errors exit 2: unknown policy key (named), no mode, plain http remote, remote unreachable", async () => {
    const bad = spawnBridge(["--remote", r!.url, "--policy", policyFile(r!, { extra: "tcb2: { require: false }\n" }), "--stdio"]);
    assert.equal(await bad.exit(), 2);
    assert.match(bad.stderr(), /POLICY_INVALID: .*policy\.yaml: tcb2: unknown key/);

    const nested = spawnBridge(["--remote", r!.url, "--policy", policyFile(r!, { extra: "collateral: { pccsURL: x }\n" }), "--stdio"]);
    assert.equal(await nested.exit(), 2);
    assert.match(nested.stderr(), /collateral\.pccsURL: unknown key/);

    const noMode = spawnBridge(["--remote", r!.url, "--policy", policyFile(r!)]);
    assert.equal(await noMode.exit(), 2);
    assert.match(noMode.stderr(), /exactly one of --stdio and --listen/);

    const plain = spawnBridge(["--remote", r!.url.replace("https:", "http:"), "--policy", policyFile(r!), "--stdio"]);
    assert.equal(await plain.exit(), 2);
    assert.match(plain.stderr(), /REMOTE_INVALID/);

    const port = await freePort();
    const gone = spawnBridge(["--remote", `https://127.0.0.1:${port}/mcp`, "--policy", policyFile(r!), "--stdio"]);
    assert.equal(await gone.exit(), 2);
    assert.match(gone.stderr(), /REMOTE_UNREACHABLE: cannot reach https:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });
});

describe("bridge: a wrong measurement forwards nothing (HTTP upstream that counts requests)", { timeout: 90_000 }, () => {
  let r: Remote | undefined;
  let everything: Awaited<ReturnType<typeof startEverythingHttp>> | undefined;
  let counter: Server | undefined;
  let count = 0;
  before(async () => {
    everything = await startEverythingHttp();
    const to = everything.port;
    counter = createServer((req, res) => {
      count++;
      const up = httpRequest({ host: "127.0.0.1", port: to, path: req.url, method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        res.flushHeaders();
        ur.pipe(res);
      });
      up.on("error", () => res.destroy());
      res.on("close", () => up.destroy());
      req.pipe(up);
    });
    await listen(counter);
    r = await startRemote(`upstream: { url: "http://127.0.0.1:${portOf(counter)}" }\n`);
  });
  after(async () => {
    await r?.running.close();
    if (counter) await shut(counter);
    await everything?.stop();
  });

  it("--stdio and --listen with a wrong mrenclave: exit 1 naming policy.measurement, the upstream got no request", async () => {
    const wrong = policyFile(r!, { mrenclave: "ab".repeat(32) });
    const connectionsBefore = r!.connections();
    const stdio = spawnBridge(["--remote", r!.url, "--policy", wrong, "--stdio"], "pipe");
    stdio.child.stdin!.write(INITIALIZE + "\n");
    assert.equal(await stdio.exit(), 1);
    assert.match(stdio.stderr(), /the remote failed attestation, nothing was forwarded: policy\.measurement: mrenclave [0-9a-f]{64}.*match no entry/);
    assert.match(stdio.stderr(), new RegExp(`mrenclave ${r!.mrenclave}`));

    const http = spawnBridge(["--remote", r!.url, "--policy", wrong, "--listen", "127.0.0.1:0"]);
    assert.equal(await http.exit(), 1);
    assert.match(http.stderr(), /policy\.measurement/);
    assert.doesNotMatch(http.stderr(), /listening on/);

    assert.equal(count, 0, "the upstream received a request");
    // Both bridges reached the proxy (and named the MRENCLAVE its certificate carries), and sent
    // it no HTTP request at all.
    assert.ok(r!.connections() >= connectionsBefore + 2, `connections: ${r!.connections() - connectionsBefore}`);
    assert.deepEqual(r!.methods, []);
  });

  it("control: with the right measurement the same upstream is reached", async () => {
    const b = await listenBridge(r!, policyFile(r!));
    try {
      const client = new Client({ name: "bridge-count", version: "1.0.0" });
      await within(client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${b.port}/mcp`))), 20_000, "initialize");
      try {
        const tools = await within(client.listTools(), 10_000, "tools/list");
        assert.ok(tools.tools.some((t) => t.name === "echo"));
      } finally {
        await client.close();
      }
      assert.ok(count >= 2, `upstream requests: ${count}`);
    } finally {
      await b.stop();
    }
  });
});

describe("bridge: a changed certificate is verified again", { timeout: 90_000 }, () => {
  let r: Remote | undefined;
  // Each test ends with a remote that fails the policy: a fresh one per test.
  beforeEach(async () => {
    r = await startRemote(`upstream: { command: ["${process.execPath}", "${EVERYTHING}", "stdio"], maxSessions: 4 }\n`);
  });
  afterEach(() => r?.running.close());

  it("--stdio: after a rotation to another MRENCLAVE the pending call is answered with the failed check and the bridge exits 1", async () => {
    const b = spawnBridge(["--remote", r!.url, "--policy", policyFile(r!), "--stdio"], "pipe");
    const lines: unknown[] = [];
    let buf = "";
    b.child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        // stdout carries MCP messages and nothing else: every line parses.
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    const answer = (id: number): Promise<{ result?: unknown; error?: { message: string } }> =>
      within(
        (async () => {
          for (;;) {
            const m = lines.find((l) => (l as { id?: unknown }).id === id);
            if (m) return m as { result?: unknown; error?: { message: string } };
            await sleep(20);
          }
        })(),
        15_000,
        `answer to id ${id} (stderr: ${b.stderr()})`,
      );
    const send = (m: object): void => void b.child.stdin!.write(JSON.stringify({ jsonrpc: "2.0", ...m }) + "\n");
    try {
      send(JSON.parse(INITIALIZE) as object);
      assert.ok((await answer(1)).result);
      send({ method: "notifications/initialized" });
      send({ id: 2, method: "tools/call", params: { name: "echo", arguments: { message: "before" } } });
      assert.match(JSON.stringify((await answer(2)).result), /before/);

      r!.useProvider(await DevProvider.open({ dir: r!.devDir, mrenclave: new Uint8Array(32).fill(0xef), warn: () => {} }));
      await r!.running.identity.rotate();
      r!.running.server.closeIdleConnections();
      await sleep(300);
      send({ id: 3, method: "tools/call", params: { name: "echo", arguments: { message: "after" } } });
      const refused = await answer(3);
      assert.equal(refused.result, undefined);
      assert.match(refused.error?.message ?? "", /the remote failed attestation \(policy\.measurement: mrenclave efefefef/);
      assert.equal(await b.exit(), 1);
      assert.match(b.stderr(), /closing the bridge: policy\.measurement/);
    } finally {
      await b.stop();
    }
  });

  it("a rotated certificate verifies and the session goes on; one with another MRENCLAVE gets 502 naming the check and the bridge exits 1", async () => {
    const b = await listenBridge(r!, policyFile(r!));
    const client = new Client({ name: "bridge-rotate", version: "1.0.0" });
    try {
      await within(client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${b.port}/mcp`))), 20_000, "initialize");
      await within(client.listTools(), 10_000, "tools/list");
      const firstFp = r!.running.identity.current.fingerprint;
      assert.match(b.stderr(), new RegExp(`certificate sha256 ${firstFp}`));

      // Same enclave, new key: the next connection presents a new certificate.
      const rotated = await r!.running.identity.rotate();
      assert.notEqual(rotated.fingerprint, firstFp);
      r!.running.server.closeIdleConnections();
      await sleep(300);
      const echo = await within(client.callTool({ name: "echo", arguments: { message: "after rotation" } }), 10_000, "echo after rotation");
      assert.match(JSON.stringify(echo.content), /after rotation/);
      assert.match(b.stderr(), new RegExp(`remote verified: mrenclave ${r!.mrenclave}.*certificate sha256 ${rotated.fingerprint}`));

      // Another enclave behind the same address (same dev PKI, other MRENCLAVE).
      r!.useProvider(await DevProvider.open({ dir: r!.devDir, mrenclave: new Uint8Array(32).fill(0xcd), warn: () => {} }));
      const bad = await r!.running.identity.rotate();
      r!.running.server.closeIdleConnections();
      await sleep(300);
      const upstreamBefore = r!.methods.filter((m) => m.startsWith("POST /mcp")).length;
      const res = await rawPost(b.port, INITIALIZE);
      assert.equal(res.status, 502, res.body);
      const body = JSON.parse(res.body) as { jsonrpc: string; error: { code: number; message: string } };
      assert.equal(body.jsonrpc, "2.0");
      assert.match(body.error.message, /the remote failed attestation \(policy\.measurement: mrenclave cdcdcdcd/);
      assert.equal(await b.exit(), 1);
      assert.match(b.stderr(), /closing the bridge: policy\.measurement: mrenclave cdcd/);
      // The request that met the bad certificate never reached the proxy's MCP endpoint.
      assert.equal(r!.methods.filter((m) => m.startsWith("POST /mcp")).length, upstreamBefore);
      assert.doesNotMatch(b.stderr(), new RegExp(`remote verified: .*${bad.fingerprint}`));
    } finally {
      await client.close().catch(() => {});
      await b.stop();
    }
  });
});
