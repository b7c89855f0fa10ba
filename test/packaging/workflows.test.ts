/**
 * The GitHub workflows, checked where they cannot run (no GitHub runner, no SGX, no registry):
 * both pass GitHub's own workflow parser, and broken copies do not; ci.yml runs the README's test
 * command on Node 20, 22 and 24; release.yml runs only for version tags on the SGX runner, with
 * the permissions it needs and actions pinned by major version; and its shell steps run here, in
 * order, with the real scripts/measure and the proxy's policy loader, against stubs of npm,
 * docker, gsc, cosign and scripts/gsc-build, producing the files the release attaches.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { register } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

// Not test/support/vectors.js: it reads the vector set on import, which nothing here needs.
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "../../..");
const DIST = resolve(HERE, "../..");
const WORKFLOWS = join(REPO, ".github/workflows");

// The parser imports its schema as JSON without an import attribute (it is built for bundlers),
// which Node refuses: give such imports the attribute.
register(
  "data:text/javascript," +
    encodeURIComponent(`export async function load(url, context, next) {
  if (url.endsWith(".json") && !context.importAttributes?.type) return next(url, { ...context, importAttributes: { ...context.importAttributes, type: "json" } });
  return next(url, context);
}`),
);
const { parseWorkflow, convertWorkflowTemplate, NoOperationTraceWriter } = await import("@actions/workflow-parser");

/* eslint-disable @typescript-eslint/no-explicit-any */
type Y = any;

const load = (name: string): Y => parse(readFileSync(join(WORKFLOWS, name), "utf8"));
const tempDir = (tag: string): string => realpathSync(mkdtempSync(join(tmpdir(), `amp-wf-${tag}-`)));

/** What GitHub's parser finds wrong with a workflow file (none: it would be accepted). */
async function problems(file: string): Promise<string[]> {
  const parsed = parseWorkflow({ name: file, content: readFileSync(file, "utf8") }, new NoOperationTraceWriter());
  if (parsed.value !== undefined) await convertWorkflowTemplate(parsed.context, parsed.value);
  return parsed.context.errors.getErrors().map((e) => e.message);
}

function triggers(on: Y): string[] {
  if (typeof on === "string") return [on];
  return (Array.isArray(on) ? [...on] : Object.keys(on)).sort();
}

const steps = (wf: Y): Y[] => Object.values(wf.jobs as Record<string, Y>).flatMap((j) => j.steps as Y[]);
const runs = (wf: Y): string[] =>
  steps(wf)
    .filter((s) => typeof s.run === "string")
    .map((s) => s.run as string);

describe("GitHub's workflow parser", () => {
  for (const name of ["ci.yml", "release.yml"]) {
    it(`accepts ${name}`, async () => {
      assert.deepEqual(await problems(join(WORKFLOWS, name)), []);
    });
  }

  // Each must be refused, or a passing check above would prove nothing.
  const BROKEN: [string, string, string, RegExp][] = [
    ["release.yml", "attestations: write", "attestations: admin", /Unexpected value 'admin'/],
    ["release.yml", "GSC_DIR: ${{ vars.GSC_DIR }}", "GSC_DIR: ${{ runner.temp }}", /Unrecognized named-value: 'runner'/],
    ["ci.yml", "    steps:", "    step:", /Unexpected value 'step'/],
    ["ci.yml", "${{ matrix.node }}\n", "${{ matrix.node\n", /expression is not closed/],
  ];
  for (const [name, from, to, error] of BROKEN) {
    it(`refuses ${name} with ${JSON.stringify(to)}`, async () => {
      const text = readFileSync(join(WORKFLOWS, name), "utf8");
      assert.ok(text.includes(from), `${name} no longer has ${JSON.stringify(from)}`);
      const copy = join(tempDir("broken"), name);
      writeFileSync(copy, text.replace(from, to));
      const found = await problems(copy);
      assert.ok(
        found.some((p) => error.test(p)),
        `expected ${error}, got ${JSON.stringify(found)}`,
      );
    });
  }
});

describe("ci.yml", () => {
  const wf = load("ci.yml");

  it("runs on every push and pull request, reading the repository only", () => {
    assert.deepEqual(triggers(wf.on), ["pull_request", "push"]);
    assert.deepEqual(wf.permissions, { contents: "read" });
  });

  it("runs the README's test command on Node 20, 22 and 24", () => {
    const readme = /Run every test:\s*```sh\n(.+)\n```/.exec(readFileSync(join(REPO, "README.md"), "utf8"));
    assert.equal(readme?.[1], "npm ci && npm test");
    const jobs = Object.values(wf.jobs as Record<string, Y>);
    assert.equal(jobs.length, 1);
    const job = jobs[0];
    assert.equal(job["runs-on"], "ubuntu-latest");
    assert.deepEqual(job.strategy.matrix, { node: [20, 22, 24] });
    const setup = (job.steps as Y[]).find((s) => /^actions\/setup-node@/.test(s.uses ?? ""));
    assert.deepEqual(setup?.with, { "node-version": "${{ matrix.node }}", cache: "npm" });
    assert.ok((job.steps as Y[]).findIndex((s) => /^actions\/checkout@/.test(s.uses ?? "")) === 0, "checkout first");
    assert.deepEqual(runs(wf), [readme?.[1]]);
  });
});

describe("release.yml", () => {
  const wf = load("release.yml");
  const job = wf.jobs.release;
  const all: Y[] = job.steps;
  const at = (pred: (s: Y) => boolean, what: string): number => {
    const i = all.findIndex(pred);
    assert.ok(i >= 0, `no step ${what}`);
    return i;
  };
  const uses = (action: string) => (s: Y) => String(s.uses ?? "").startsWith(`${action}@`);
  const running = (re: RegExp) => (s: Y) => typeof s.run === "string" && re.test(s.run);

  it("runs only for version tags, so no pull request ever reaches the SGX runner", () => {
    assert.deepEqual(triggers(wf.on), ["push"]);
    assert.deepEqual(wf.on.push, { tags: ["v*"] });
    assert.deepEqual(Object.keys(wf.jobs), ["release"]);
  });

  it("runs on the self-hosted sgx runner with exactly the permissions it needs", () => {
    assert.deepEqual(job["runs-on"], ["self-hosted", "sgx"]);
    assert.deepEqual(wf.permissions, { contents: "write", packages: "write", "id-token": "write", attestations: "write" });
    assert.equal(job.permissions, undefined);
    assert.equal(wf.defaults?.run?.shell, "bash");
  });

  it("pins every action (in both workflows) by major version tag", () => {
    for (const s of [...steps(load("ci.yml")), ...all].filter((x) => x.uses)) {
      assert.match(s.uses, /^[\w.-]+\/[\w./-]+@v\d+$/);
    }
  });

  it("builds, measures, verifies on SGX, pushes, signs, attests and releases, in that order", () => {
    const order = [
      at(running(/^\s*scripts\/gsc-build --key /m), "running scripts/gsc-build --key"),
      at(running(/^\s*scripts\/measure --out /m), "running scripts/measure --out"),
      at(running(/attestable-mcp verify "https:\/\/127\.0\.0\.1:\$port\/" --policy /), "verifying the enclave on this host"),
      at(running(/^\s*docker push /m), "pushing the image"),
      at(uses("sigstore/cosign-installer"), "installing cosign"),
      at(running(/^cosign sign --yes "\$IMAGE@\$DIGEST"$/m), "signing keyless"),
      at(uses("actions/attest-build-provenance"), "attesting provenance"),
      at(uses("softprops/action-gh-release"), "releasing"),
    ];
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
    assert.ok(at(uses("docker/login-action"), "logging in") < order[3]!);
    const login = all.find(uses("docker/login-action"));
    assert.deepEqual(login.with, { registry: "ghcr.io", username: "${{ github.actor }}", password: "${{ secrets.GITHUB_TOKEN }}" });
    const attest = all.find((s) => uses("actions/attest-build-provenance")(s) && s.with?.["subject-digest"]);
    assert.deepEqual(attest.with, { "subject-name": "${{ steps.image.outputs.name }}", "subject-digest": "${{ steps.image.outputs.digest }}", "push-to-registry": true });
  });

  it("passes values to shell steps through env only, never by ${{ }} in the script", () => {
    for (const run of runs(wf)) assert.doesNotMatch(run, /\$\{\{/);
  });

  it("calls scripts that exist, are executable and take the options it passes", () => {
    const calls = new Map<string, Set<string>>();
    for (const run of [...runs(wf), ...runs(load("ci.yml"))]) {
      for (const m of run.matchAll(/(?:^|[\s;&|(])(scripts\/[\w.-]+)([^\n;&|)]*)/g)) {
        const opts = calls.get(m[1]!) ?? new Set<string>();
        for (const o of m[2]!.matchAll(/--[\w-]+/g)) opts.add(o[0]);
        calls.set(m[1]!, opts);
      }
    }
    assert.deepEqual([...calls.keys()].sort(), ["scripts/gsc-build", "scripts/measure"]);
    for (const [script, opts] of calls) {
      assert.ok((statSync(join(REPO, script)).mode & 0o111) !== 0, `${script} is not executable`);
      const help = spawnSync(join(REPO, script), ["--help"], { encoding: "utf8" });
      assert.equal(help.status, 0, help.stderr);
      for (const o of opts) assert.match(help.stdout, new RegExp(`^\\s+${o}\\b`, "m"), `${script} has no ${o}`);
    }
  });

  it("has shell steps that pass bash -n and shellcheck", (t) => {
    for (const run of runs(wf)) {
      const r = spawnSync("bash", ["-n"], { input: run, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    }
    if (!existsSync("/usr/bin/shellcheck")) {
      t.diagnostic("shellcheck is not installed (Debian package shellcheck): only bash -n ran");
      return;
    }
    for (const run of runs(wf)) {
      const r = spawnSync("/usr/bin/shellcheck", ["--shell=bash", "-"], { input: run, encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    }
  });
});

// ---- the release's shell steps, run -------------------------------------------------------------

const MRENCLAVE = "ab".repeat(32);
const MRSIGNER = "cd".repeat(32);
const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;
const KEY = "-----BEGIN PRIVATE KEY-----\nnot a key: the stub of scripts/gsc-build only copies it\n-----END PRIVATE KEY-----";
const REPOSITORY = "Example-Org/Attestable-MCP";
const IMAGE = "ghcr.io/example-org/attestable-mcp";

const STUBS: Record<string, string> = {
  npm: `printf '%s\\n' "$*" >>"$STUB_LOG/npm"`,
  sleep: `printf '%s\\n' "$*" >>"$STUB_LOG/sleep"`,
  cosign: `printf '%s\\n' "$*" >>"$STUB_LOG/cosign"`,
  // What GSC prints for \`gsc info-image\`: its SIGSTRUCT summary as TOML.
  gsc: `[[ $1 == info-image ]] || exit 99
printf '%s\\n' "$2" >>"$STUB_LOG/gsc"
printf 'mr_enclave = "${MRENCLAVE}"\\nmr_signer = "${MRSIGNER}"\\nisv_prod_id = 1\\nisv_svn = 3\\ndate = "2026-01-02"\\ndebug = %s\\n' "$STUB_DEBUG"`,
  docker: `printf '%s\\n' "$*" >>"$STUB_LOG/docker"
case $1 in
  run) echo 4f1c0ffee ;;
  port) echo 127.0.0.1:49153 ;;
  inspect) echo true ;;
  push) printf 'The push refers to repository [%s]\\n%s: digest: ${DIGEST} size: 1573\\n' "\${2%:*}" "\${2##*:}" ;;
  image) ref=\${!#}
    printf 'docker.io/someone/else@sha256:%s\\n' "${"f".repeat(64)}"
    [[ -n $STUB_NO_REPO_DIGESTS ]] || printf '%s@${DIGEST}\\n' "\${ref%:*}" ;;
esac`,
};
// Answers each call with the next exit status of $STUB_VERIFY (2: not listening yet, 1: rejected).
const VERIFY_STUB = `printf '%s\\n' "$*" >>"$STUB_LOG/verify"
read -ra codes <<<"$STUB_VERIFY"
n=$(wc -l <"$STUB_LOG/verify")
exit "\${codes[n - 1]:-0}"`;
const GSC_BUILD_STUB = `printf '%s\\n' "$@" >"$STUB_LOG/gsc-build"
stat -c %a "$2" >"$STUB_LOG/gsc-build.mode"
cp "$2" "$STUB_LOG/gsc-build.key"`;

function writeExec(path: string, body: string): void {
  writeFileSync(path, `#!/usr/bin/env bash\nset -euo pipefail\n${body}\n`);
  chmodSync(path, 0o755);
}

interface Ctx {
  secrets: Record<string, string>;
  github: Record<string, string>;
  runner: Record<string, string>;
  steps: Record<string, Record<string, string>>;
}

/** Expand the few expression forms the workflow uses; anything else is a test failure. */
function expand(value: unknown, ctx: Ctx): string {
  return String(value).replace(/\$\{\{\s*(.+?)\s*\}\}/g, (_, expr: string) => {
    const out = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expr);
    if (out) {
      const v = ctx.steps[out[1]!]?.[out[2]!];
      assert.ok(v !== undefined, `${expr}: no earlier step wrote it`);
      return v;
    }
    const m = /^(secrets|vars|github|runner)\.(\w+)$/.exec(expr);
    assert.ok(m, `unexpected expression ${expr}`);
    if (m[1] === "vars") return ""; // unset repository variables expand to nothing
    if (m[1] === "secrets") return ctx.secrets[m[2]!] ?? "";
    const v = ctx[m[1] as "github" | "runner"][m[2]!];
    assert.ok(v !== undefined, `unexpected expression ${expr}`);
    return v;
  });
}

const expandAll = (o: Y, ctx: Ctx): Record<string, string> => Object.fromEntries(Object.entries(o ?? {}).map(([k, v]) => [k, expand(v, ctx)]));

interface Release {
  failed: string | null;
  /** The steps' stdout and stderr, where the runner would show them. */
  output: string;
  temp: string;
  log: (tool: string) => string[];
  outputs: Ctx["steps"];
  withs: { uses: string; with: Record<string, string> }[];
}

/** Run release.yml's shell steps in order, as the runner would, in a scratch checkout. */
function release(opts: { secret?: string; debug?: boolean; noRepoDigests?: boolean; verify?: string } = {}): Release {
  const dir = tempDir("release");
  const [ws, bin, temp, logs] = ["ws", "bin", "runner-temp", "logs"].map((d) => join(dir, d)) as [string, string, string, string];
  for (const d of [join(ws, "scripts"), join(ws, "node_modules/.bin"), bin, temp, logs]) mkdirSync(d, { recursive: true });
  symlinkSync(join(REPO, "scripts/measure"), join(ws, "scripts/measure"));
  symlinkSync(DIST, join(ws, "dist"));
  writeExec(join(ws, "scripts/gsc-build"), GSC_BUILD_STUB);
  writeExec(join(ws, "node_modules/.bin/attestable-mcp"), VERIFY_STUB);
  for (const [tool, body] of Object.entries(STUBS)) writeExec(join(bin, tool), body);

  const wf = load("release.yml");
  const ctx: Ctx = {
    secrets: { ENCLAVE_SIGNING_KEY: opts.secret ?? KEY, GITHUB_TOKEN: "token" },
    github: { actor: "releaser" },
    runner: { temp },
    steps: {},
  };
  const env = {
    PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`,
    HOME: dir,
    RUNNER_TEMP: temp,
    GITHUB_REPOSITORY: REPOSITORY,
    GITHUB_REF: "refs/tags/v1.2.3",
    GITHUB_REF_NAME: "v1.2.3",
    GITHUB_WORKFLOW_REF: `${REPOSITORY}/.github/workflows/release.yml@refs/tags/v1.2.3`,
    STUB_LOG: logs,
    STUB_DEBUG: opts.debug ? "true" : "false",
    STUB_NO_REPO_DIGESTS: opts.noRepoDigests ? "1" : "",
    STUB_VERIFY: opts.verify ?? "0",
    GITHUB_RUN_ID: "42",
    ...expandAll(wf.jobs.release.env, ctx),
  };
  const result: Release = {
    failed: null,
    output: "",
    temp,
    log: (tool) => (existsSync(join(logs, tool)) ? readFileSync(join(logs, tool), "utf8").split("\n").slice(0, -1) : []),
    outputs: ctx.steps,
    withs: [],
  };
  for (const [i, step] of (wf.jobs.release.steps as Y[]).entries()) {
    if (step.uses) {
      result.withs.push({ uses: step.uses, with: expandAll(step.with, ctx) });
      continue;
    }
    const script = join(dir, `step-${i}.sh`);
    const output = join(dir, `output-${i}`);
    writeFileSync(script, step.run);
    writeFileSync(output, "");
    const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], {
      cwd: ws,
      env: { ...env, ...expandAll(step.env, ctx), GITHUB_OUTPUT: output },
      encoding: "utf8",
      timeout: 60_000,
    });
    result.output += r.stdout + r.stderr;
    if (r.status !== 0) return { ...result, failed: step.name ?? step.run };
    if (step.id)
      ctx.steps[step.id] = Object.fromEntries(
        readFileSync(output, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
  }
  return result;
}

describe("release.yml's shell steps, run against stubs of npm, docker, gsc, cosign and gsc-build", () => {
  it("sign with the secret key, measure, push and write the policy and digest the release attaches", () => {
    const r = release();
    assert.equal(r.failed, null, r.output);
    assert.deepEqual(r.log("npm"), ["ci"]);
    assert.deepEqual(r.log("gsc-build"), ["--key", join(r.temp, "enclave-key.pem")]);
    assert.deepEqual(r.log("gsc-build.mode"), ["600"]);
    assert.equal(readFileSync(join(r.temp, "../logs/gsc-build.key"), "utf8"), `${KEY}\n`);
    assert.ok(!existsSync(join(r.temp, "enclave-key.pem")), "the key is removed after the build");
    assert.deepEqual(r.log("gsc"), ["gsc-attestable-mcp-app"]);
    assert.deepEqual(r.outputs.policy, { mrenclave: MRENCLAVE, mrsigner: MRSIGNER, "isv-prod-id": "1", "isv-svn": "3" });
    assert.deepEqual(r.outputs.image, { name: IMAGE, digest: DIGEST });
    const docker = r.log("docker");
    assert.match(docker[0]!, /^run -d --name attestable-mcp-release-42 .*--device \/dev\/sgx_enclave --device \/dev\/sgx_provision .*-p 127\.0\.0\.1::8443 gsc-attestable-mcp-app$/);
    assert.deepEqual(r.log("verify"), [`verify https://127.0.0.1:49153/ --policy ${join(r.temp, "release-assets/policy.yaml")}`]);
    assert.ok(docker.indexOf("rm -f attestable-mcp-release-42") < docker.indexOf(`push ${IMAGE}:v1.2.3`), "the checked enclave is removed before the push");
    assert.deepEqual(docker.slice(-3, -1), [`tag gsc-attestable-mcp-app ${IMAGE}:v1.2.3`, `push ${IMAGE}:v1.2.3`]);
    assert.deepEqual(r.log("cosign"), [`sign --yes ${IMAGE}@${DIGEST}`]);

    const assets = join(r.temp, "release-assets");
    assert.deepEqual(readdirSync(assets).sort(), ["image-digest.txt", "policy.yaml"]);
    assert.equal(readFileSync(join(assets, "image-digest.txt"), "utf8"), `${DIGEST}\n`);
    const policy = parse(readFileSync(join(assets, "policy.yaml"), "utf8"));
    assert.deepEqual(policy.trustRoots, ["intel"]);
    assert.deepEqual(policy.measurements, [{ mrenclave: MRENCLAVE }, { mrsigner: MRSIGNER, isvProdId: 1, minIsvSvn: 3 }]);
    assert.equal(policy.allowDebug, false);

    const withOf = (action: string) => r.withs.filter((w) => w.uses.startsWith(`${action}@`)).map((w) => w.with);
    assert.deepEqual(withOf("actions/attest-build-provenance"), [{ "subject-name": IMAGE, "subject-digest": DIGEST, "push-to-registry": "true" }, { "subject-path": `${assets}/*` }]);
    const [gh] = withOf("softprops/action-gh-release");
    assert.deepEqual(gh?.files?.trim().split("\n"), [join(assets, "policy.yaml"), join(assets, "image-digest.txt")]);
    assert.equal(gh?.fail_on_unmatched_files, "true");
    const notes = readFileSync(gh!.body_path!, "utf8");
    for (const s of [
      `${IMAGE}@${DIGEST}`,
      MRENCLAVE,
      MRSIGNER,
      "attestable-mcp verify https://HOST:8443 --policy policy.yaml",
      `--certificate-identity https://github.com/${REPOSITORY}/.github/workflows/release.yml@refs/tags/v1.2.3`,
    ]) {
      assert.ok(notes.includes(s), `release notes lack ${s}`);
    }
  });

  it("refuse to build without the signing key (gsc-build would mint a new MRSIGNER)", () => {
    const r = release({ secret: "" });
    assert.equal(r.failed, "Build and sign the enclave image");
    assert.match(r.output, /the secret ENCLAVE_SIGNING_KEY is not set/);
    assert.deepEqual(r.log("gsc-build"), []);
  });

  it("refuse to publish a debug enclave", () => {
    const r = release({ debug: true });
    assert.equal(r.failed, "Measure");
    assert.match(r.output, /is a DEBUG enclave/);
    assert.deepEqual(r.log("docker"), []);
    assert.deepEqual(r.log("cosign"), []);
  });

  it("refuse to publish an enclave the measured policy rejects on this host", () => {
    const r = release({ verify: "1" });
    assert.equal(r.failed, "Verify the enclave on this host with the measured policy");
    const docker = r.log("docker");
    assert.ok(docker.includes("logs attestable-mcp-release-42") && docker.includes("rm -f attestable-mcp-release-42"), "logs shown, container removed");
    assert.ok(!docker.some((l) => l.startsWith("push ")), "nothing pushed");
  });

  it("wait for the enclave to load (verify's exit 2) and then take its verdict", () => {
    const r = release({ verify: "2 2 0" });
    assert.equal(r.failed, null, r.output);
    assert.equal(r.log("verify").length, 3);
    assert.equal(r.log("sleep").length, 2);
    assert.ok(!r.log("docker").includes("logs attestable-mcp-release-42"));
  });

  it("take the digest from docker push's output when docker records no repo digest", () => {
    const r = release({ noRepoDigests: true });
    assert.equal(r.failed, null, r.output);
    assert.deepEqual(r.outputs.image, { name: IMAGE, digest: DIGEST });
  });
});
