/**
 * The package as a stranger gets it: packed, installed into an empty directory far from this
 * repository, and used there. The installed `attestable-mcp` prints its usage and inspects a real
 * SGX quote; a consumer script imports verifyQuote by the package name and reaches the verdict
 * expected.json records, and imports a name from each subpath entry; every module a CLI command
 * loads resolves from the install alone (so the runtime dependencies are declared); and the
 * tarball carries the library and nothing of the repository's tests, build scripts, fixtures or keys.
 */
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { after, before, describe, it } from "node:test";
import { DIST, expected, REPO, vectorPath } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const PKG = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  exports: Record<string, Record<string, string>>;
};
const BIN = Object.keys(PKG.bin)[0]!;
const PHALA = expected.sgxQuotes.find((e) => e.path === "sgx/phala/quote.bin")!;

/** A cold npm cache means registry round trips for every dependency; a warm one, seconds. */
const INSTALL_TIMEOUT = 120_000;
const NPM_TIMEOUT = 60_000;
const RUN_TIMEOUT = 30_000;

/**
 * The environment children get. NODE_PATH would let the install resolve what it does not declare;
 * NODE_TEST_CONTEXT would make a child think it is a test file. Under `npm test`, npm exports the
 * repo as npm_config_local_prefix; npm must not be pointed back at the repo, so it goes too (and
 * every npm call below names its directory with --prefix or an explicit path besides).
 */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ["NODE_PATH", "NODE_TEST_CONTEXT", "npm_config_local_prefix"]) delete env[k];
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeout: number): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: childEnv(), encoding: "utf8", timeout, maxBuffer: 64 * 1024 * 1024 });
}

/** Exit 0 or an assertion that shows what the child said (and whether it was killed for time). */
function ok(r: SpawnSyncReturns<string>, what: string): string {
  const why = r.error ? ` (${r.error.message})` : r.signal ? ` (killed by ${r.signal})` : "";
  assert.equal(r.status, 0, `${what} exited ${r.status}${why}\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`);
  return r.stdout;
}

function walk(dir: string, root = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? walk(p, root) : [relative(root, p).split(sep).join("/")];
  });
}

describe("the npm package, packed, installed in an empty directory and used there", { timeout: 300_000 }, () => {
  let tmp = "";
  let tarball = "";
  /** Paths inside the tarball, without npm's "package/" prefix. */
  let entries: string[] = [];
  let consumer = "";

  before(() => {
    tmp = tempDir("amcp-pack-");
    // Pack from a staging copy, not the repo root. The tests run from DIST: dist/ after
    // `npm run build`, or a private out dir while developing, when the repo's dist/ may be stale
    // or absent; packing the repo root would test whichever dist/ happens to lie there. The copy
    // is the repository as npm would see it (package.json, README, tests, fixtures, scripts,
    // configs, any local dev PKI) with DIST in dist/'s place, so `files` is what decides what
    // ships, and the exclusion checks below can fail when `files` grows too wide.
    // --ignore-scripts: `prepare` rebuilds dist/ from scratch, which would replace the build under
    // test (and in the repo would wipe the dist/ other tests run from).
    const staging = join(tmp, "staging");
    const skip = new Set(["node_modules", ".git", "dist", relative(REPO, DIST).split(sep)[0]!]);
    cpSync(REPO, staging, {
      recursive: true,
      filter: (src) => {
        const top = relative(REPO, src).split(sep)[0]!;
        return !skip.has(top) && !top.startsWith(".build-");
      },
    });
    cpSync(DIST, join(staging, "dist"), { recursive: true });
    const packed = ok(run("npm", ["pack", staging, "--ignore-scripts", "--pack-destination", tmp, "--json"], staging, NPM_TIMEOUT), "npm pack");
    const info = JSON.parse(packed) as { filename: string }[];
    tarball = join(tmp, info[0]!.filename);
    assert.ok(existsSync(tarball), `npm pack reported ${info[0]!.filename} but wrote no such file`);

    // The tarball itself, not npm's report of it: tar is what a consumer's npm unpacks.
    entries = ok(run("tar", ["-tzf", tarball], tmp, RUN_TIMEOUT), "tar -tzf")
      .split("\n")
      .filter((l) => l && !l.endsWith("/"))
      .map((l) => l.replace(/^package\//, ""));

    consumer = join(tmp, "consumer");
    mkdirSync(consumer);
    // A package.json of its own, so npm takes this directory as the project and looks no further up.
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }) + "\n");
    // Dependencies come from the npm cache `npm ci` warmed, the registry only for what it lacks.
    // Install scripts stay on: a stranger's install runs them.
    ok(run("npm", ["install", tarball, "--prefix", consumer, "--no-audit", "--no-fund", "--prefer-offline"], consumer, INSTALL_TIMEOUT), "npm install of the tarball");

    // The evidence travels with the consumer, so nothing a command touches is in the repository.
    mkdirSync(join(consumer, "evidence"));
    cpSync(vectorPath(PHALA.path), join(consumer, "evidence/quote.bin"));
    cpSync(vectorPath(PHALA.collateral!), join(consumer, "evidence/collateral"), { recursive: true });
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("ships the library and the CLI and nothing else: no tests, build scripts, fixtures, sources or keys", () => {
    assert.ok(entries.length > 0, "the tarball is empty");
    for (const p of entries) {
      assert.doesNotMatch(p, /(^|\/)(test|tests|fixtures|vectors|scripts|bench)\//, p);
      assert.doesNotMatch(p, /^dist\/(test|scripts)\//, p);
      assert.doesNotMatch(p, /\.test\.(js|ts|d\.ts)$/, p);
      // The dev PKI is PEM keys and certificates; the Intel root ships compiled into roots.js.
      assert.doesNotMatch(p, /\.(pem|key|der|crt|p12|bin)$/, p);
      assert.ok(!p.endsWith(".ts") || p.endsWith(".d.ts"), `TypeScript source ${p}`);
    }
    // The named hazards above give the clearer message; this catches whatever else `files` lets in.
    const stray = entries.filter((p) => !p.startsWith("dist/proxy/") && !/^docs\/[\w.-]+\.md$/.test(p) && p !== "package.json" && p !== "README.md");
    assert.deepEqual(stray, [], "outside files: [dist/proxy, docs, README.md]");
  });

  it("ships every document the README links to, so its links work where npm shows it", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const linked = [...readme.matchAll(/\]\((docs\/[\w.-]+\.md)(?:#[^)]*)?\)/g)].map((m) => m[1]!);
    assert.ok(linked.length > 0, "the README links to no document under docs/");
    for (const doc of new Set(linked)) assert.ok(entries.includes(doc), `README links to ${doc}, which the package does not ship`);
  });

  it("ships every module of the library, and everything package.json's bin and exports name", () => {
    const sources = walk(join(REPO, "proxy")).filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"));
    assert.ok(sources.length > 10);
    for (const s of sources) {
      const base = `dist/proxy/${s.replace(/\.ts$/, "")}`;
      assert.ok(entries.includes(`${base}.js`), `${base}.js missing`);
      assert.ok(entries.includes(`${base}.d.ts`), `${base}.d.ts missing`);
    }
    const named = [...Object.values(PKG.bin), ...Object.values(PKG.exports).flatMap((e) => Object.values(e))];
    for (const p of named) assert.ok(entries.includes(p.replace(/^\.\//, "")), `${p} named in package.json, not in the tarball`);
    assert.ok(readFileSync(join(consumer, "node_modules", PKG.name, PKG.bin[BIN]!), "utf8").startsWith("#!/usr/bin/env node\n"), "the bin has no node shebang");
  });

  it(`the installed ${BIN} --help exits 0 and names every command`, () => {
    const out = ok(run(join(consumer, "node_modules/.bin", BIN), ["--help"], consumer, RUN_TIMEOUT), `${BIN} --help`);
    assert.match(out, /^Usage: attestable-mcp <command>/);
    for (const cmd of ["inspect", "serve", "verify", "bridge"]) assert.match(out, new RegExp(`^  ${cmd} `, "m"), cmd);
  });

  it(`the installed ${BIN} inspect verifies the real Phala SGX quote with its collateral`, () => {
    const r = run(join(consumer, "node_modules/.bin", BIN), ["inspect", "evidence/quote.bin", "--collateral", "evidence/collateral", "--at", PHALA.at!], consumer, RUN_TIMEOUT);
    const out = ok(r, `${BIN} inspect`);
    assert.ok(out.includes(PHALA.mrenclave), `MRENCLAVE ${PHALA.mrenclave} not in:\n${out}`);
    assert.ok(out.includes(PHALA.mrsigner), "MRSIGNER");
    assert.ok(out.includes(PHALA.tcbStatus!), "TCB status");
    assert.match(out, /^Verdict: the evidence verifies$/m);
  });

  it("a consumer script imports verifyQuote by the package name and reaches expected.json's verdict, and one name from each subpath", () => {
    // One name from each subpath package.json's exports declares, by the name a consumer writes.
    const subpaths: Record<string, string> = { verify: "verifyQuote", client: "attestedFetch", attest: "mintIdentity", server: "startServer", dev: "DevProvider" };
    assert.deepEqual(Object.keys(PKG.exports).sort(), [".", ...Object.keys(subpaths).map((s) => `./${s}`)].sort(), "a subpath this test does not import");
    const kinds = Object.keys(subpaths)
      .map((sub) => `${sub}: typeof ${sub}Name`)
      .join(", ");
    writeFileSync(
      join(consumer, "verify.mjs"),
      [
        `import { readFileSync } from "node:fs";`,
        `import { verifyQuote } from ${JSON.stringify(PKG.name)};`,
        ...Object.entries(subpaths).map(([sub, name]) => `import { ${name} as ${sub}Name } from ${JSON.stringify(`${PKG.name}/${sub}`)};`),
        `const [quote, collateral, at] = process.argv.slice(2);`,
        `const v = await verifyQuote(new Uint8Array(readFileSync(quote)), { collateral, at: new Date(at) });`,
        `const subpaths = { ${kinds}, verifyIsRoots: verifyName === verifyQuote };`,
        `console.log(JSON.stringify({ ok: v.ok, failed: v.failed, tcbStatus: v.tcb?.status ?? null, advisoryIds: v.tcb?.advisoryIds ?? null, mrenclave: v.quote?.mrenclave ?? null, subpaths }));`,
        ``,
      ].join("\n"),
    );
    const out = ok(run(process.execPath, ["verify.mjs", "evidence/quote.bin", "evidence/collateral", PHALA.at!], consumer, RUN_TIMEOUT), "verify.mjs");
    const v = JSON.parse(out) as { ok: boolean; failed: unknown; tcbStatus: string | null; advisoryIds: string[] | null; mrenclave: string | null; subpaths: Record<string, unknown> };
    assert.equal(v.ok, true, JSON.stringify(v.failed));
    assert.equal(v.tcbStatus, PHALA.tcbStatus);
    assert.deepEqual(v.advisoryIds, PHALA.advisoryIds);
    assert.equal(v.mrenclave, PHALA.mrenclave);
    // Every name is a function or class; /verify's verifyQuote is the root's own (one module, not a copy).
    assert.deepEqual(v.subpaths, { ...Object.fromEntries(Object.keys(subpaths).map((sub) => [sub, "function"])), verifyIsRoots: true });
  });

  it("every module a CLI command loads on dispatch resolves from the install alone", () => {
    // --help and inspect never reach serve's, verify's or bridge's imports (the CLI loads each
    // command's modules lazily), so a dependency missing from package.json would only show when
    // a stranger first runs `serve`. Loading the same modules here finds it now.
    const cli = join(consumer, "node_modules", PKG.name, PKG.bin[BIN]!);
    const targets = [...readFileSync(cli, "utf8").matchAll(/import\("(\.[^"]+)"\)/g)].map((m) => m[1]!);
    assert.ok(targets.length >= 4, `expected the CLI to load its commands lazily, found ${targets.join(", ")}`);
    writeFileSync(
      join(consumer, "load.mjs"),
      [
        `const cli = new URL(${JSON.stringify(`./node_modules/${PKG.name}/${PKG.bin[BIN]!}`)}, import.meta.url);`,
        `for (const t of ${JSON.stringify([...new Set(targets)])}) await import(new URL(t, cli));`,
        `console.log("loaded");`,
        ``,
      ].join("\n"),
    );
    assert.equal(ok(run(process.execPath, ["load.mjs"], consumer, RUN_TIMEOUT), "load.mjs").trim(), "loaded");
  });
});
