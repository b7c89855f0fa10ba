import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, envName, loadConfig } from "../../proxy/server/config.js";
import { ClientPolicyError } from "../../proxy/server/client-attestation.js";
import { REPO } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

function file(yaml: string): string {
  const p = join(tempDir("amcp-config-"), "c.yaml");
  writeFileSync(p, yaml);
  return p;
}

const rejects = (p: Promise<unknown>, key: string, source: RegExp, reason: RegExp) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, key);
    assert.match(e.source, source);
    assert.match(e.message, reason);
    return true;
  });

describe("config", () => {
  it("configs/dev.yaml: dev provider, stdio server-everything, 127.0.0.1:8443, defaults filled", async () => {
    const c = await loadConfig({ file: join(REPO, "configs/dev.yaml") });
    assert.equal(c.attestation.provider, "dev");
    assert.deepEqual(c.listen, { host: "127.0.0.1", port: 8443 });
    assert.equal(c.upstream.kind, "stdio");
    assert.equal(c.certificate.keyType, "P-384");
    assert.equal(c.certificate.lifetimeMs, 24 * 3600_000);
    assert.equal(c.upstream.bodyLimit, 4 * 1024 * 1024);
    assert.equal(c.tls.minVersion, "TLSv1.3");
    assert.deepEqual(c.metrics.listen, { host: "127.0.0.1", port: 9464 });
  });

  it("environment overrides the file, flags override the environment", async () => {
    const f = file('attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:3001" }\nlisten: "127.0.0.1:1000"\n');
    const c = await loadConfig({ file: f, env: { ATTESTABLE_MCP_LISTEN: "127.0.0.1:2000", ATTESTABLE_MCP_LOG_LEVEL: "debug" }, sets: [["log.level", "warn"]] });
    assert.equal(c.listen.port, 2000);
    assert.equal(c.log.level, "warn");
    assert.equal(envName("upstream.allowPlaintextLoopback"), "ATTESTABLE_MCP_UPSTREAM_ALLOW_PLAINTEXT_LOOPBACK");
  });

  it("upstream forms: http loopback, unix, command", async () => {
    const base = "attestation: { provider: dev }\n";
    assert.deepEqual((await loadConfig({ file: file(base + 'upstream: { url: "http://[::1]:3001" }') })).upstream.kind, "http");
    const u = (await loadConfig({ file: file(base + 'upstream: { url: "unix:/run/mcp.sock" }') })).upstream;
    assert.equal(u.kind === "unix" && u.path, "/run/mcp.sock");
    const s = (await loadConfig({ file: file(base + 'upstream: { command: ["node", "s.js"], env: { A: "1" } }') })).upstream;
    assert.deepEqual(s.kind === "stdio" && s.env, { A: "1" });
  });

  it("every bad key or value names the key and where it came from", async () => {
    const base = 'attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:3001" }\n';
    const f = (extra: string) => loadConfig({ file: file(base + extra) });
    await rejects(f("listn: x\n"), "listn", /c\.yaml$/, /unknown key/);
    await rejects(f("log: { level: loud }\n"), "log.level", /c\.yaml$/, /one of fatal/);
    await rejects(f("certificate: { lifetime: 24 }\n"), "certificate.lifetime", /c\.yaml$/, /duration/);
    await rejects(f("certificate: { keyType: P-521 }\n"), "certificate.keyType", /c\.yaml$/, /P-384, P-256/);
    await rejects(f('listen: "8443"\n'), "listen", /c\.yaml$/, /HOST:PORT/);
    await rejects(loadConfig({ file: file('attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:3001", maxSessions: 0 }\n') }), "upstream.maxSessions", /c\.yaml$/, /integer 1\.\.10000/);
    await rejects(loadConfig({ file: file('upstream: { url: "http://127.0.0.1:1" }\n') }), "attestation.provider", /default/, /required/);
    await rejects(loadConfig({ file: file("attestation: { provider: dev }\n") }), "upstream", /./, /exactly one of upstream\.url and upstream\.command/);
    await rejects(loadConfig({ file: file('attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:1", command: ["x"] }\n') }), "upstream", /c\.yaml$/, /exactly one/);
    await rejects(loadConfig({ file: file('attestation: { provider: dev }\nupstream: { url: "http://10.0.0.5:3001" }\n') }), "upstream.url", /c\.yaml$/, /loopback/);
    await rejects(loadConfig({ file: file('attestation: { provider: dev }\nupstream: { url: "https://127.0.0.1:3001" }\n') }), "upstream.url", /c\.yaml$/, /scheme/);
    await rejects(loadConfig({ file: file('attestation: { provider: dev }\nupstream: { url: "unix:relative.sock" }\n') }), "upstream.url", /c\.yaml$/, /absolute/);
    await rejects(loadConfig({ file: file(base), env: { ATTESTABLE_MCP_LISTN: "x" } }), "ATTESTABLE_MCP_LISTN", /environment/, /unknown variable/);
    await rejects(loadConfig({ file: file(base), env: { ATTESTABLE_MCP_UPSTREAM_MAX_SESSIONS: "many" } }), "upstream.maxSessions", /environment ATTESTABLE_MCP_UPSTREAM_MAX_SESSIONS/, /integer/);
    await rejects(loadConfig({ file: file(base), sets: [["bogus.key", "1"]] }), "bogus.key", /flag --set/, /unknown key/);
    await rejects(loadConfig({ file: "/no/such/config.yaml" }), "--config", /no\/such/, /ENOENT/);
    await rejects(loadConfig({ file: file("a: 1\na: 2\n") }), "(yaml)", /c\.yaml$/, /unique|duplicate/i);
  });

  it("gramine with a TCP upstream needs allowPlaintextLoopback written out; unix and command do not", async () => {
    const g = "attestation: { provider: gramine }\n";
    await rejects(loadConfig({ file: file(g + 'upstream: { url: "http://127.0.0.1:3001" }\n') }), "upstream.allowPlaintextLoopback", /./, /leaves the enclave in clear/);
    const ok = await loadConfig({ file: file(g + 'upstream: { url: "http://127.0.0.1:3001", allowPlaintextLoopback: true }\n') });
    assert.equal(ok.upstream.allowPlaintextLoopback, true);
    assert.equal((await loadConfig({ file: file(g + 'upstream: { url: "unix:/run/s.sock" }\n') })).upstream.kind, "unix");
  });

  describe("clientAttestation", () => {
    const base = 'attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:3001" }\n';
    const policyFile = (yaml: string): string => file(yaml);
    const policyRejects = (p: Promise<unknown>, policyKey: string | null, reason: RegExp) =>
      assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof ClientPolicyError, String(e));
        assert.equal(e.key, "clientAttestation.policy");
        assert.equal(e.policyKey, policyKey);
        assert.equal(e.code, "CLIENT_POLICY_INVALID");
        assert.match(e.message, reason);
        return true;
      });

    it("off by default: no policy loaded", async () => {
      const c = await loadConfig({ file: file(base) });
      assert.deepEqual({ mode: c.clientAttestation.mode, policy: c.clientAttestation.policy }, { mode: "off", policy: null });
    });

    it("optional with a valid policy: loaded at config time; a relative path is taken from the working directory", async () => {
      const c = await loadConfig({
        file: file(base),
        sets: [
          ["clientAttestation.mode", "optional"],
          ["clientAttestation.policy", "configs/client-policy.example.yaml"],
        ],
      });
      assert.equal(c.clientAttestation.mode, "optional");
      assert.equal(c.clientAttestation.policy?.freshness, "certificate");
      assert.equal(c.clientAttestation.policy?.source, join(process.cwd(), "configs/client-policy.example.yaml"));
    });

    it("required or optional without a policy is an error naming clientAttestation.policy", async () => {
      await rejects(loadConfig({ file: file(base + "clientAttestation: { mode: required }\n") }), "clientAttestation.policy", /./, /required when clientAttestation\.mode is required/);
      await rejects(loadConfig({ file: file(base), env: { ATTESTABLE_MCP_CLIENT_ATTESTATION_MODE: "optional" } }), "clientAttestation.policy", /./, /required when/);
      await rejects(loadConfig({ file: file(base + "clientAttestation: { mode: sometimes }\n") }), "clientAttestation.mode", /c\.yaml$/, /one of off, optional, required/);
    });

    it("a policy with the mode left at its default is an error (it would look like client attestation and be none)", async () => {
      const pol = policyFile("measurements: any\nfreshness: certificate\n");
      await rejects(loadConfig({ file: file(base + `clientAttestation: { policy: "${pol}" }\n`) }), "clientAttestation.mode", /c\.yaml$/, /defaults to off/);
      const explicit = await loadConfig({ file: file(base + `clientAttestation: { mode: "off", policy: "${pol}" }\n`) });
      assert.equal(explicit.clientAttestation.policy, null);
    });

    it("an invalid policy names clientAttestation.policy and the key inside the policy", async () => {
      const with_ = (yaml: string) => loadConfig({ file: file(base + `clientAttestation: { mode: required, policy: "${policyFile(yaml)}" }\n`) });
      await policyRejects(with_("measurements: any\nfreshness: certificate\nbogus: 1\n"), "bogus", /clientAttestation\.policy: bogus: unknown key/);
      await policyRejects(with_("freshness: certificate\n"), "measurements", /required/);
      await policyRejects(
        loadConfig({ file: file(base + 'clientAttestation: { mode: required, policy: "/no/such/policy.yaml" }\n') }),
        null,
        /clientAttestation\.policy: cannot read the file \(ENOENT\)/,
      );
    });

    it("a client policy must say freshness: certificate (exporter, nonce or the default are refused)", async () => {
      const with_ = (yaml: string) => loadConfig({ file: file(base + `clientAttestation: { mode: optional, policy: "${policyFile(yaml)}" }\n`) });
      await policyRejects(with_("measurements: any\nfreshness: exporter\n"), "freshness", /must say "freshness: certificate".*got exporter/);
      await policyRejects(with_("measurements: any\nfreshness: nonce\n"), "freshness", /got nonce/);
      await policyRejects(with_("measurements: any\n"), "freshness", /the default when the key is absent/);
    });
  });

  it("workers > 1 is refused under the gramine provider (no descriptor passing in an enclave) and with a stdio upstream", async () => {
    const gramine = file('attestation: { provider: gramine }\nupstream: { url: "unix:/run/mcp.sock" }\nworkers: 2\n');
    await rejects(loadConfig({ file: gramine }), "workers", /c\.yaml$/, /Gramine does not support/);
    const dev = file('attestation: { provider: dev }\nupstream: { url: "http://127.0.0.1:3001" }\nworkers: 2\n');
    assert.equal((await loadConfig({ file: dev })).workers, 2);
    const stdio = file('attestation: { provider: dev }\nupstream: { command: ["node", "s.js"] }\n');
    await rejects(loadConfig({ file: stdio, sets: [["workers", "2"]] }), "workers", /--set workers/, /upstream\.command/);
  });
});
