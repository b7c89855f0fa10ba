/**
 * Config fuzz (issue 8): a valid config with one key or value broken at random, through the
 * file, the environment and `--set`. Every invalid input is refused with a ConfigError naming
 * the key (and, from the CLI, exit 2 with the key on stderr); nothing invalid loads.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify } from "yaml";
import { CONFIG_KEYS, ConfigError, envName, loadConfig } from "../../proxy/server/config.js";
import { rng } from "../support/mutate.js";
import { CLI, REPO } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const SEED = Number(process.env.FUZZ_SEED ?? 0xc0ff1e);

/** Values no key accepts: nested mappings, lists of lists, fractions, empty strings. */
const INVALID: unknown[] = [{ x: { y: 1 } }, [[1]], -1.5, "", [{}], { "": [] }];

/** A valid base: every section present, so any leaf can be broken in place. */
const BASE = {
  listen: "127.0.0.1:0",
  attestation: { provider: "dev", dev: { dir: ".attestable-mcp/dev" } },
  certificate: { keyType: "P-256", lifetime: "1h" },
  upstream: { command: ["node", "server.js"], env: { A: "b" }, maxSessions: 4, sessionIdle: "1m", bodyLimit: "1MiB" },
  metrics: { listen: null },
  log: { level: "warn" },
  shutdown: { drain: "1s" },
};

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  let at = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof at[p] !== "object" || at[p] === null || Array.isArray(at[p])) at[p] = {};
    at = at[p] as Record<string, unknown>;
  }
  at[parts.at(-1)!] = value;
}

/** The error must name the broken key (or, for the url/command pair, the section that holds it). */
function namesKey(e: ConfigError, key: string): boolean {
  return e.key === key || (e.key === "upstream" && (key === "upstream.url" || key === "upstream.command"));
}

describe("fuzz: config", () => {
  let dir: string;
  before(async () => {
    dir = tempDir("amcp-config-fuzz-");
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("the base config is valid", async () => {
    const f = join(dir, "base.yaml");
    await writeFile(f, stringify(BASE));
    const c = await loadConfig({ file: f });
    assert.equal(c.upstream.kind, "stdio");
  });

  it("2,000 configs with one invalid value or unknown key: each refused, naming the key, from file, environment or --set", async () => {
    const r = rng(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const tally = { file: 0, env: 0, set: 0, unknown: 0 };
    for (let i = 0; i < 2_000; i++) {
      const doc = structuredClone(BASE) as Record<string, unknown>;
      const mode = pick(["file", "file", "env", "set", "unknown"] as const);
      let key: string;
      let expectedKey: string;
      const inputs: Parameters<typeof loadConfig>[0] = {};
      if (mode === "unknown") {
        const section = pick(["", "upstream.", "attestation.", "attestation.dev.", "tls.", "metrics.", "log."]);
        key = `${section}${pick(["listen2", "Upstream", "lifeTime", "x", "max_sessions", "provider "])}`;
        if ((CONFIG_KEYS as string[]).includes(key)) continue;
        setPath(doc, key, pick([1, "a", true, null, []]));
        expectedKey = key;
      } else {
        key = pick(CONFIG_KEYS);
        const value = pick(INVALID);
        if (mode === "file") setPath(doc, key, value);
        else if (mode === "env") inputs.env = { [envName(key)]: JSON.stringify(value) };
        else inputs.sets = [[key, JSON.stringify(value)]];
        expectedKey = key;
      }
      tally[mode]++;
      const f = join(dir, `c${i % 8}.yaml`);
      await writeFile(f, stringify(doc));
      inputs.file = f;
      await assert.rejects(loadConfig(inputs), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `#${i} ${mode} ${key}: ${String(e)}`);
        assert.ok(namesKey(e, expectedKey), `#${i} ${mode} ${key}: the error names ${e.key} (${e.message})`);
        assert.ok(e.message.includes(e.key));
        // A url/command conflict involves both sources; the error may name either.
        if (e.key !== "upstream") {
          if (mode === "env") assert.match(e.source, new RegExp(envName(key)), `#${i} ${key}: ${e.message}`);
          if (mode === "set") assert.match(e.source, /--set/, `#${i} ${key}: ${e.message}`);
          if (mode === "file" || mode === "unknown") assert.equal(e.source, f, `#${i} ${key}: ${e.message}`);
        }
        return true;
      });
    }
    console.log(`# fuzz config: ${JSON.stringify(tally)} (seed ${SEED})`);
    assert.ok(tally.file > 0 && tally.env > 0 && tally.set > 0 && tally.unknown > 0);
  });

  it("the CLI: an invalid config exits 2 and names the key on stderr (12 spawned runs)", async () => {
    const r = rng(SEED + 1);
    for (let i = 0; i < 12; i++) {
      const key = CONFIG_KEYS[Math.floor(r() * CONFIG_KEYS.length)]!;
      const doc = structuredClone(BASE) as Record<string, unknown>;
      setPath(doc, key, INVALID[i % INVALID.length]);
      const f = join(dir, `cli${i}.yaml`);
      await writeFile(f, stringify(doc));
      const child = spawn(process.execPath, [CLI, "serve", "--config", f], { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        child.once("exit", (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 2, `${key}: exit ${code}, stderr ${stderr}`);
      const named = key === "upstream.url" || key === "upstream.command" ? /upstream/ : new RegExp(key.replace(/\./g, "\\."));
      assert.match(stderr, named, `${key}: ${stderr}`);
    }
  });
});
