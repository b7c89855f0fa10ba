/**
 * The documentation a newcomer reads: a short README whose quick start stays true, links that
 * reach a file and a heading, and docs/ pages that document every config key, policy key and
 * command flag the code knows, each key once.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { buildPolicy } from "../../proxy/evidence/policy.js";
import { CONFIG_KEYS } from "../../proxy/server/config.js";
import { CLI, REPO } from "../support/vectors.js";

const DOCS = join(REPO, "docs");
const pages = readdirSync(DOCS)
  .filter((f) => f.endsWith(".md"))
  .map((f) => join(DOCS, f));
const read = (p: string): string => readFileSync(p, "utf8");
const readme = read(join(REPO, "README.md"));

/** GitHub's heading anchors: lower case, punctuation dropped (but - and _), spaces to hyphens. */
function anchors(md: string): Set<string> {
  const out = new Set<string>();
  for (const m of md.replace(/^```[\s\S]*?^```/gm, "").matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(
      m[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, "")
        .replace(/\s/g, "-"),
    );
  }
  return out;
}

/** The first-column keys of a page's tables: "| `key` | …". */
function tableKeys(md: string): string[] {
  return [...md.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
}

/** The keys a policy level knows, read from the validator's own "unknown key (known: …)" answer. */
async function policyKeysAt(doc: Record<string, unknown>): Promise<string[]> {
  try {
    await buildPolicy(doc, "(docs test)", REPO, async () => "");
  } catch (e) {
    const known = /unknown key \(known: ([^)]+)\)/.exec((e as Error).message);
    if (known) return known[1]!.split(", ");
    throw e;
  }
  throw new Error("an unknown key was accepted");
}

describe("README", () => {
  it("is at most 200 lines", () => {
    assert.ok(readme.split("\n").length <= 200, `${readme.split("\n").length} lines`);
  });

  it("has the two quick-start commands, each in its own code block", () => {
    assert.match(readme, /\n```sh\nnpm ci && npm start\n```\n/);
    assert.match(readme, /\n```sh\nnpm ci && npm test\n```\n/);
    const start = JSON.parse(read(join(REPO, "package.json"))).scripts.start as string;
    assert.equal(start, "node dist/proxy/cli/main.js serve --config configs/dev.yaml");
  });

  it("has one section per command and links every docs/ page", () => {
    for (const c of ["serve", "verify", "inspect", "bridge"]) assert.match(readme, new RegExp(`^### \`${c}\``, "m"), c);
    for (const p of pages) assert.ok(readme.includes(`](docs/${relative(DOCS, p)}`), relative(REPO, p));
  });
});

describe("links", () => {
  for (const file of [join(REPO, "README.md"), ...pages]) {
    it(`${relative(REPO, file)}: every relative link reaches a file, and a heading when it names one`, () => {
      const text = read(file).replace(/^```[\s\S]*?^```/gm, "");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        const [path, hash] = target.split("#") as [string, string | undefined];
        const to = path === "" ? file : resolve(dirname(file), path);
        assert.ok(existsSync(to), `${target}: no such file`);
        assert.ok(to.startsWith(REPO + "/"), `${target}: outside the repository`);
        if (hash !== undefined && to.endsWith(".md")) assert.ok(anchors(read(to)).has(hash), `${target}: no such heading`);
      }
    });
  }
});

describe("docs/", () => {
  it("configuration.md documents every config key of serve, and only there", () => {
    const documented = tableKeys(read(join(DOCS, "configuration.md")));
    assert.deepEqual([...documented].sort(), [...CONFIG_KEYS].sort());
    for (const p of pages.filter((p) => !p.endsWith("configuration.md"))) {
      for (const k of tableKeys(read(p))) assert.ok(!CONFIG_KEYS.includes(k), `${relative(REPO, p)} documents ${k} again`);
    }
  });

  it("policy.md documents every policy key the validator knows", async () => {
    const known = [
      ...(await policyKeysAt({ unknown: 1 })),
      ...(await policyKeysAt({ tcb: { unknown: 1 } })).map((k) => `tcb.${k}`),
      ...(await policyKeysAt({ collateral: { unknown: 1 } })).map((k) => `collateral.${k}`),
      ...(await policyKeysAt({ measurements: [{ unknown: 1 }] })).map((k) => `measurements[].${k}`),
    ].filter((k) => k !== "tcb" && k !== "collateral");
    assert.deepEqual(tableKeys(read(join(DOCS, "policy.md"))).sort(), known.sort());
  });

  it("commands.md documents every command and every flag of the usage", () => {
    const r = spawnSync(process.execPath, [CLI, "--help"], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const commands = read(join(DOCS, "commands.md"));
    for (const c of [...r.stdout.matchAll(/^ {2}(\w+) /gm)].map((m) => m[1]!)) assert.match(commands, new RegExp(`^## ${c}$`, "m"), c);
    const flags = new Set([...r.stdout.matchAll(/(?<![\w-])(--[a-z][a-z-]*)/g)].map((m) => m[1]!));
    assert.ok(flags.has("--save-cert"));
    for (const f of flags) assert.ok(commands.includes(`\`${f}`), f);
  });
});
