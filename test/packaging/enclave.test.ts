/**
 * The enclave packaging at file level (no Docker engine, no SGX, no GSC here): the GSC application
 * manifest and the gramine-sgx manifest template (rendered with sample values) parse as TOML and
 * trust every file the entrypoint runs; Dockerfile.gsc builds what the manifests and
 * configs/enclave.yaml name; gsc.config.yaml has what GSC reads; scripts/gsc-build and
 * scripts/measure pass bash -n and shellcheck, explain themselves, fail clearly without docker or
 * gsc, drive docker / gsc / openssl as expected (against stubs), and measure turns `gsc info-image`
 * output into a client policy.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../proxy/server/config.js";
import { gramineNamespace, renderTemplate, TemplateError } from "../support/render-template.js";
import { REPO } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Y = any;

const read = (p: string): string => readFileSync(join(REPO, p), "utf8");

/** The image's ENTRYPOINT, fixed by the packaging design (compose, k8s and the README rely on it). */
const ENTRYPOINT = ["/usr/local/bin/node", "/app/dist/proxy/cli/main.js", "serve", "--config", "/app/configs/enclave.yaml"];
const CONFIG_IN_IMAGE = "/app/configs/enclave.yaml";
const GSC_MANIFEST = "enclave/attestable-mcp.manifest";
const TEMPLATE = "enclave/attestable-mcp.manifest.template";
const GIB = 2 ** 30;

/** Sample values for the template, as a host with Node outside /usr/local would give them. */
const SAMPLE = {
  log_level: "error",
  arch_libdir: "/lib/x86_64-linux-gnu",
  node_path: "/opt/node-v24.20.0-linux-x64/bin/node",
  app_dir: "/opt/attestable-mcp/app",
  gramine: gramineNamespace({
    runtimedir: "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc",
    libos: "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so",
  }),
};

// ---- manifest helpers --------------------------------------------------------------------------

/** Gramine's size strings: bytes, or a number with K, M or G (binary units). */
function parseSize(s: unknown): number {
  const m = typeof s === "string" ? /^(\d+)([KMG]?)$/.exec(s) : null;
  assert.ok(m, `not a Gramine size: ${JSON.stringify(s)}`);
  return Number(m[1]) * { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2] as "" | "K" | "M" | "G"];
}

/** Every key Gramine v1.9's manifest schema (python/graminelibos/manifest_check.py) accepts. */
const GRAMINE_KEYS = new Set([
  "fs.mounts",
  "fs.root.type",
  "fs.root.uri",
  "fs.start_dir",
  "libos.entrypoint",
  "libos.check_invalid_pointers",
  "loader.entrypoint.uri",
  "loader.entrypoint.sha256",
  "loader.argv",
  "loader.argv_src_file",
  "loader.env_src_file",
  "loader.gid",
  "loader.uid",
  "loader.insecure__use_cmdline_argv",
  "loader.insecure__use_host_env",
  "loader.insecure__disable_aslr",
  "loader.log_file",
  "loader.log_level",
  "sgx.allowed_files",
  "sgx.cpu_features.avx",
  "sgx.cpu_features.avx512",
  "sgx.cpu_features.amx",
  "sgx.cpu_features.mpx",
  "sgx.cpu_features.pkru",
  "sgx.debug",
  "sgx.edmm_enable",
  "sgx.enable_stats",
  "sgx.enclave_size",
  "sgx.file_check_policy",
  "sgx.insecure__allow_memfaults_without_exinfo",
  "sgx.insecure__rpc_thread_num",
  "sgx.isvprodid",
  "sgx.isvsvn",
  "sgx.max_threads",
  "sgx.preheat_enclave",
  "sgx.profile.enable",
  "sgx.profile.mode",
  "sgx.profile.with_stack",
  "sgx.profile.frequency",
  "sgx.remote_attestation",
  "sgx.seal_key.flags_mask",
  "sgx.seal_key.xfrm_mask",
  "sgx.seal_key.misc_mask",
  "sgx.trusted_files",
  "sgx.use_exinfo",
  "sgx.vtune_profile",
  "sys.allowed_ioctls",
  "sys.brk.max_size",
  "sys.disallow_subprocesses",
  "sys.enable_extra_runtime_domain_names_conf",
  "sys.enable_sigterm_injection",
  "sys.experimental__enable_flock",
  "sys.insecure__allow_eventfd",
  "sys.debug__mock_syscalls",
  "sys.stack.size",
  "sys.fds.limit",
]);
/** Tables whose keys are free-form names. */
const GRAMINE_FREE_TABLES = ["loader.env", "fs.insecure__keys", "sys.ioctl_structs"];

function manifestKeys(obj: Y, prefix = ""): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (GRAMINE_FREE_TABLES.includes(prefix)) out.push(`${prefix}.*`);
    else if (v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)) out.push(...manifestKeys(v, key));
    else out.push(key);
  }
  return out;
}

/** Host URI a path inside the enclave comes from, following fs.mounts (longest prefix wins). */
function hostUri(m: Y, path: string, root: string | null): { uri: string } | { tmpfs: string } | null {
  const mounts: Y[] = [...(m.fs?.mounts ?? [])];
  let best: Y = null;
  for (const mount of mounts) {
    const p = String(mount.path).replace(/\/+$/, "") || "/";
    if (path === p || path.startsWith(p === "/" ? "/" : p + "/")) {
      if (!best || p.length > best.p.length) best = { ...mount, p };
    }
  }
  if (best) {
    if ((best.type ?? "chroot") === "tmpfs") return { tmpfs: best.p };
    assert.equal(best.type ?? "chroot", "chroot", `${path} is under a ${best.type} mount`);
    return { uri: String(best.uri).replace(/\/+$/, "") + path.slice(best.p === "/" ? 0 : best.p.length) };
  }
  const rootUri = m.fs?.root?.uri ?? root;
  return rootUri ? { uri: String(rootUri).replace(/\/+$/, "") + path } : null;
}

function trustedEntries(m: Y): string[] {
  return ((m.sgx?.trusted_files ?? []) as Y[]).map((e) => (typeof e === "string" ? e : e.uri));
}

function isTrusted(m: Y, uri: string): boolean {
  return trustedEntries(m).some((e) => e === uri || (e.endsWith("/") && uri.startsWith(e)));
}

/** Lines that set an `insecure__` option without a comment on the line(s) right above. */
function undocumentedInsecure(text: string): string[] {
  const lines = text.split("\n");
  const bad: string[] = [];
  lines.forEach((line, i) => {
    const code = line.replace(/#.*$/, "");
    if (!/insecure__/.test(code)) return;
    const above = i > 0 ? lines[i - 1]!.trim() : "";
    const explained = /^#\s*\S+(\s+\S+){2,}/.test(above); // a comment of at least three words
    if (!explained) bad.push(`${i + 1}: ${line.trim()}`);
  });
  return bad;
}

// ---- Dockerfile helpers ------------------------------------------------------------------------

interface Instr {
  op: string;
  args: string;
  stage: number;
}
interface Stage {
  image: string;
  name: string | null;
  instrs: Instr[];
}

function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let cur = "";
  for (const raw of text.split("\n")) {
    if (/^\s*#/.test(raw)) continue; // comments (also inside continuations) are dropped
    if (!cur && raw.trim() === "") continue;
    const cont = /\\\s*$/.test(raw);
    cur += (cur ? " " : "") + raw.replace(/\\\s*$/, "").trim();
    if (!cont) {
      logical.push(cur);
      cur = "";
    }
  }
  if (cur) logical.push(cur);
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const op = m[1]!.toUpperCase();
    const args = m[2]!;
    if (op === "FROM") {
      const words = args.split(/\s+/).filter((w) => !w.startsWith("--"));
      stages.push({ image: words[0]!, name: words[1]?.toUpperCase() === "AS" ? words[2]! : null, instrs: [] });
      continue;
    }
    assert.ok(stages.length > 0 || op === "ARG", `${op} before FROM`);
    if (stages.length) stages.at(-1)!.instrs.push({ op, args, stage: stages.length - 1 });
  }
  return stages;
}

/** COPY / ADD: flags, sources, destination. */
function copyParts(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = args.trim().startsWith("[") ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith("--")) {
    const [k, v] = words.shift()!.slice(2).split("=", 2);
    flags[k!] = v ?? "";
  }
  return { flags, sources: words.slice(0, -1), dest: words.at(-1)! };
}

// ---- script helpers ----------------------------------------------------------------------------

const BASH = ["/bin/bash", "/usr/bin/bash"].find((p) => existsSync(p)) ?? "bash";
const SCRIPTS = ["scripts/gsc-build", "scripts/measure"];

function runScript(script: string, args: string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}) {
  const r = spawnSync(BASH, [join(REPO, script), ...args], {
    encoding: "utf8",
    env: opts.env ?? { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: tmpdir() },
    input: opts.input ?? "",
    cwd: opts.cwd ?? REPO,
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function realTempDir(prefix: string): string {
  return realpathSync(tempDir(`amcp-${prefix}-`));
}

function writeExec(path: string, body: string): void {
  writeFileSync(path, body);
  chmodSync(path, 0o755);
}

/** `gsc info-image` output as GSC v1.9 prints it: tomli_w.dumps() of the SIGSTRUCT summary, then print(). */
const INFO_IMAGE = `mr_enclave = "bf4d079a6e7b0a7fa6015ba8c5bede8fdecc0a304c2c02b53297e2f0d52d63f7"
mr_signer = "8e1fe00395e36202f2defe5155c23e3e2ae3ed601d774bb753783183a959f756"
isv_prod_id = 1
isv_svn = 3
date = "2026-11-24"
flags = "0400000000000000"
xfrms = "0300000000000000"
misc_select = "00000000"
debug = false

`;
const SAMPLE_MRENCLAVE = "bf4d079a6e7b0a7fa6015ba8c5bede8fdecc0a304c2c02b53297e2f0d52d63f7";
const SAMPLE_MRSIGNER = "8e1fe00395e36202f2defe5155c23e3e2ae3ed601d774bb753783183a959f756";

// ---- the repository's own files ----------------------------------------------------------------

const configYaml: Y = parseYaml(read("configs/enclave.yaml"));
const upstreamCommand: string[] = configYaml.upstream.command;
const gscText = read(GSC_MANIFEST);
const templateText = read(TEMPLATE);
const gscManifest: Y = parseToml(gscText);
const rendered = renderTemplate(templateText, SAMPLE);
const templateManifest: Y = parseToml(rendered);
const stages = parseDockerfile(read("Dockerfile.gsc"));
const finalStage = stages.at(-1)!;

/** The two manifests, with how each resolves paths that no mount names. */
const MANIFESTS: { name: string; m: Y; text: string; root: string | null }[] = [
  // GSC's entrypoint manifest mounts the whole image as the root ("file:/"), so paths in the
  // enclave are the image's paths.
  { name: GSC_MANIFEST, m: gscManifest, text: gscText, root: "file:/" },
  { name: `${TEMPLATE} (rendered)`, m: templateManifest, text: templateText, root: null },
];

describe("the manifest template renderer", () => {
  it("renders variables and gramine.runtimedir(), and refuses what it does not know", () => {
    assert.equal(renderTemplate('a = "{{ x }}{{ gramine.runtimedir() }}" {# gone #}', { x: "/p", gramine: SAMPLE.gramine }), 'a = "/p/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc" ');
    assert.equal(renderTemplate("{{gramine.libos}}", { gramine: SAMPLE.gramine }), "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so");
    assert.throws(() => renderTemplate("{{ nope }}", {}), TemplateError);
    assert.throws(() => renderTemplate("{% if x %}y{% endif %}", { x: "1" }), TemplateError);
    assert.throws(() => renderTemplate("{{ x | upper }}", { x: "1" }), TemplateError);
    assert.throws(() => renderTemplate("{{ gramine.libos() }}", { gramine: SAMPLE.gramine }), TemplateError);
  });

  it("the template uses only the variables gramine-manifest is given in its header, and leaves no Jinja behind", () => {
    const used = new Set([...templateText.replace(/^#.*$/gm, "").matchAll(/\{\{\s*([\w.]+)/g)].map((m) => m[1]!.split(".")[0]!));
    assert.deepEqual([...used].sort(), ["app_dir", "arch_libdir", "gramine", "log_level", "node_path"]);
    for (const v of ["log_level", "arch_libdir", "node_path", "app_dir"]) assert.match(templateText, new RegExp(`^#\\s+-D${v}=`, "m"), `header shows -D${v}`);
    assert.ok(!rendered.includes("{{") && !rendered.includes("{%"));
  });
});

describe("enclave manifests", () => {
  for (const { name, m, text, root } of MANIFESTS) {
    describe(name, () => {
      it("parses as TOML with only keys Gramine's manifest schema knows", () => {
        const unknown = manifestKeys(m).filter((k) => !GRAMINE_KEYS.has(k) && !GRAMINE_FREE_TABLES.some((t) => k === `${t}.*`));
        assert.deepEqual(unknown, []);
        for (const mount of m.fs?.mounts ?? []) {
          assert.ok(String(mount.path).startsWith("/"), `mount path ${mount.path} must be absolute`);
          assert.ok(["chroot", "tmpfs", "encrypted", "untrusted_shm"].includes(mount.type ?? "chroot"), `mount type ${mount.type}`);
          if ((mount.type ?? "chroot") === "chroot") assert.match(String(mount.uri), /^file:\//, `mount ${mount.path}`);
        }
        for (const e of trustedEntries(m)) assert.match(e, /^file:\//, `trusted file ${e} must be an absolute file: URI`);
      });

      it('remote attestation is "dcap" (the gramine provider refuses anything else)', () => {
        assert.equal(m.sgx.remote_attestation, "dcap");
      });

      it("every file the entrypoint runs is trusted and reachable (node, the proxy, its config, the MCP server)", () => {
        const mcpServer = upstreamCommand.find((a) => a.startsWith("/app/mcp-server/"));
        assert.ok(mcpServer, `configs/enclave.yaml upstream.command names a file under /app/mcp-server: ${upstreamCommand.join(" ")}`);
        const paths = [ENTRYPOINT[0]!, ENTRYPOINT[1]!, CONFIG_IN_IMAGE, "/app/package.json", upstreamCommand[0]!, mcpServer];
        for (const p of paths) {
          const h = hostUri(m, p, root);
          assert.ok(h, `${p}: no mount and no root covers it`);
          assert.ok(!("tmpfs" in h), `${p} is hidden by the tmpfs at ${"tmpfs" in h ? h.tmpfs : ""}`);
          assert.ok(isTrusted(m, h.uri), `${p} (${h.uri}) is not in sgx.trusted_files`);
        }
        assert.notEqual(m.sgx.file_check_policy, "allow_all_but_log", "allow_all_but_log opens every file (and makes GSC skip trusted files)");
        for (const a of m.sgx.allowed_files ?? []) {
          for (const p of paths) assert.ok(!(hostUri(m, p, root) as { uri: string }).uri.startsWith(String(a)), `${p} is an allowed (unhashed) file via ${a}`);
        }
      });

      it("enclave size and threads meet Node's needs: >= 4G (a power of two) and >= 32 threads", () => {
        const size = parseSize(m.sgx.enclave_size);
        assert.ok(size >= 4 * GIB, `sgx.enclave_size ${m.sgx.enclave_size}`);
        assert.equal(size & (size - 1), 0, "SGX enclave sizes are powers of two");
        assert.ok(Number.isInteger(m.sgx.max_threads) && m.sgx.max_threads >= 32, `sgx.max_threads ${m.sgx.max_threads}`);
        assert.ok(parseSize(m.sys.stack.size) >= 1024 * 1024, "V8 expects a ~1 MB main-thread stack");
        // each thread slot's stack comes out of the enclave: keep most of it for the heap
        assert.ok(m.sgx.max_threads * parseSize(m.sys.stack.size) <= size / 8);
      });

      it("no insecure__ option without a comment explaining it; no host environment; runtime state on tmpfs", () => {
        assert.deepEqual(undocumentedInsecure(text), []);
        assert.equal(m.loader?.insecure__use_host_env, undefined);
        assert.equal(m.loader?.insecure__use_cmdline_argv, undefined);
        for (const [k, v] of Object.entries(m.loader?.env ?? {})) {
          assert.ok(typeof v === "string" || (typeof v === "object" && v !== null && "value" in v), `loader.env.${k} passes the host's value through`);
        }
        assert.equal(m.loader.env.NODE_ENV, "production");
        assert.ok(
          (m.fs.mounts as Y[]).some((x) => x.type === "tmpfs" && x.path === "/tmp"),
          "tmpfs at /tmp",
        );
        assert.equal(m.sys.enable_sigterm_injection, true, "docker stop / k8s drain the proxy through SIGTERM");
      });
    });
  }

  it("the insecure__ check itself: flags an uncommented option, accepts a commented one", () => {
    assert.deepEqual(undocumentedInsecure("a = 1\nsys.insecure__allow_eventfd = true\n"), ["2: sys.insecure__allow_eventfd = true"]);
    assert.deepEqual(undocumentedInsecure("# libuv needs host eventfds across fork here\nsys.insecure__allow_eventfd = true\n"), []);
    assert.deepEqual(undocumentedInsecure("# no insecure__ option here\nx = 1 # not insecure__ either\n"), []);
    assert.deepEqual(undocumentedInsecure('loader.env = { insecure__x = "1" }\n'), ['1: loader.env = { insecure__x = "1" }']);
  });

  it("the GSC manifest leaves to GSC what GSC owns, and names files (GSC hashes each entry as a file)", () => {
    assert.equal(gscManifest.libos?.entrypoint, undefined, "GSC points libos.entrypoint at its link to the ENTRYPOINT binary");
    assert.equal(gscManifest.loader?.argv, undefined, "GSC serialises the ENTRYPOINT into trusted_argv (loader.argv would conflict)");
    assert.equal(gscManifest.loader?.argv_src_file, undefined);
    assert.equal(gscManifest.loader?.entrypoint, undefined);
    assert.equal(gscManifest.fs?.root, undefined, "GSC mounts the image as the root");
    assert.equal(gscManifest.loader?.env?.PATH, undefined, "GSC joins PATH values: set it in the image");
    assert.equal(gscManifest.loader?.env?.LD_LIBRARY_PATH, undefined);
    for (const e of trustedEntries(gscManifest)) assert.ok(!e.endsWith("/"), `${e}: GSC's finalize_manifest.py hashes entries as files`);
  });

  it("the template runs the image's ENTRYPOINT with node's libraries trusted and a production enclave", () => {
    const m = templateManifest;
    assert.deepEqual(m.loader.argv, ENTRYPOINT);
    assert.equal(m.libos.entrypoint, ENTRYPOINT[0]);
    assert.equal(m.fs.start_dir, "/app");
    const libDirs = [(SAMPLE.gramine.runtimedir as () => string)(), SAMPLE.arch_libdir, `/usr${SAMPLE.arch_libdir}`];
    const searched = (m.loader.env.LD_LIBRARY_PATH as string).split(":").map((p) => hostUri(m, p, null));
    for (const dir of libDirs) {
      assert.ok(trustedEntries(m).includes(`file:${dir}/`), `${dir}/ (glibc from Gramine, libstdc++ and libgcc_s from the host) is trusted`);
      assert.ok(
        searched.some((h) => h !== null && "uri" in h && h.uri === `file:${dir}`),
        `LD_LIBRARY_PATH reaches ${dir}`,
      );
    }
    assert.equal((hostUri(m, "/usr/local/bin/node", null) as { uri: string }).uri, `file:${SAMPLE.node_path}`);
    assert.ok(isTrusted(m, `file:${SAMPLE.app_dir}/node_modules/yaml/dist/index.js`), "the proxy's production dependencies");
    assert.ok(!isTrusted(m, `file:${SAMPLE.app_dir}/.attestable-mcp/dev/root.key`), "only the app's own subtrees, not all of app_dir");
    assert.equal(m.sgx.debug, false);
  });

  it("both manifests measure the same sizing, identity and environment", () => {
    const pick = (m: Y) => ({
      remote_attestation: m.sgx.remote_attestation,
      enclave_size: m.sgx.enclave_size,
      max_threads: m.sgx.max_threads,
      edmm_enable: m.sgx.edmm_enable ?? false,
      isvprodid: m.sgx.isvprodid,
      isvsvn: m.sgx.isvsvn,
      stack: m.sys.stack.size,
      fds: m.sys.fds?.limit,
      sigterm: m.sys.enable_sigterm_injection,
      NODE_ENV: m.loader.env.NODE_ENV,
      HOME: m.loader.env.HOME,
    });
    assert.deepEqual(pick(gscManifest), pick(templateManifest));
    assert.ok(Number.isInteger(gscManifest.sgx.isvprodid) && gscManifest.sgx.isvprodid > 0, "a product id clients can pin with MRSIGNER");
  });
});

describe("Dockerfile.gsc", () => {
  const stageNames = new Set(stages.map((s) => s.name).filter(Boolean));
  const external = stages.filter((s) => !stageNames.has(s.image));

  it("multi-stage, every base image pinned to an exact version (no latest, no bare major), all the same Node", () => {
    assert.ok(stages.length >= 2, "a build stage and a final stage");
    for (const s of external) {
      const [ref, digest] = s.image.split("@");
      const tag = ref!.includes(":") ? ref!.slice(ref!.lastIndexOf(":") + 1) : "";
      if (digest) assert.match(digest, /^sha256:[0-9a-f]{64}$/);
      else {
        assert.notEqual(tag, "", `${s.image}: no tag means latest`);
        assert.notEqual(tag, "latest", s.image);
        assert.match(tag, /^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$/, `${s.image}: pin an exact version (x.y.z), not a major or a moving tag`);
      }
    }
    assert.equal(new Set(external.map((s) => s.image)).size, 1, "the node that builds is the node that runs");
    assert.match(external[0]!.image, /^node:\d+\.\d+\.\d+-bookworm-slim/, "official Node image on Debian 12 (GSC-supported)");
  });

  it("ENTRYPOINT is `attestable-mcp serve --config /app/configs/enclave.yaml` by absolute paths, with no CMD", () => {
    const eps = finalStage.instrs.filter((i) => i.op === "ENTRYPOINT");
    assert.equal(eps.length, 1);
    assert.deepEqual(JSON.parse(eps[0]!.args), ENTRYPOINT);
    assert.equal(finalStage.instrs.filter((i) => i.op === "CMD").length, 0, "a CMD would be appended to the trusted argv");
    assert.ok(existsSync(join(REPO, "proxy/cli/main.ts")), "dist/proxy/cli/main.js is built from proxy/cli/main.ts");
    assert.equal(upstreamCommand[0], ENTRYPOINT[0], "the MCP server runs on the same node binary");
  });

  it("the final stage holds the built proxy, package.json, production node_modules, the enclave config and the MCP server", () => {
    const copies = finalStage.instrs.filter((i) => i.op === "COPY").map((i) => copyParts(i.args));
    const to = (dest: string) => copies.find((c) => c.dest.replace(/\/$/, "") === dest);
    const cfg = to(CONFIG_IN_IMAGE);
    assert.ok(cfg, "COPY configs/enclave.yaml /app/configs/enclave.yaml");
    assert.deepEqual(cfg.sources, ["configs/enclave.yaml"]);
    assert.equal(cfg.flags.from, undefined, "straight from the repository");
    assert.ok(to("/app/dist/proxy")?.flags.from, "dist/proxy from the build stage");
    assert.ok(to("/app/package.json"), 'package.json ("type": "module")');
    assert.ok(to("/app/mcp-server"), "the MCP server");
    const nm = to("/app/node_modules");
    assert.ok(nm?.flags.from, "node_modules from a deps stage");
    // that stage installs production dependencies only
    const deps = stages.find((s) => s.name === nm.flags.from)!;
    const installs = deps.instrs.filter((i) => i.op === "RUN" && /\bnpm (ci|install|i)\b/.test(i.args));
    assert.ok(installs.length > 0);
    for (const i of installs) assert.match(i.args, /--omit=dev/, i.args);
    assert.ok(
      installs.some((i) => /\bnpm ci\b.*--omit=dev.*--ignore-scripts|\bnpm ci\b.*--ignore-scripts.*--omit=dev/.test(i.args)),
      "npm ci --omit=dev --ignore-scripts",
    );
    assert.ok(!finalStage.instrs.some((i) => i.op === "RUN" && /\bnpm (ci|install|i)\b/.test(i.args) && !/--omit=dev/.test(i.args)));
  });

  it("copies no secrets: never the whole context, .attestable-mcp, or key / certificate files", () => {
    for (const s of stages) {
      for (const i of s.instrs.filter((x) => x.op === "COPY" || x.op === "ADD")) {
        const { flags, sources } = copyParts(i.args);
        if (flags.from) continue;
        for (const src of sources) {
          assert.ok(!/^\.\/?$/.test(src), `${i.op} ${i.args}: the whole build context (it may hold .attestable-mcp/ and keys)`);
          assert.ok(!src.includes(".attestable-mcp"), `${i.op} ${i.args}`);
          assert.ok(!/\.(key|pem)$/.test(src), `${i.op} ${i.args}`);
          assert.ok(!src.includes("*"), `${i.op} ${i.args}: name files, no globs`);
        }
      }
    }
    assert.ok(!finalStage.instrs.some((i) => i.op === "ENV" && /(KEY|SECRET|TOKEN|PASSWORD)/i.test(i.args)));
  });

  it("MCP_SERVER_PACKAGE defaults to an exact version of the server configs/enclave.yaml runs, installed under /app/mcp-server", () => {
    const arg = stages.flatMap((s) => s.instrs).find((i) => i.op === "ARG" && i.args.startsWith("MCP_SERVER_PACKAGE="));
    assert.ok(arg, "ARG MCP_SERVER_PACKAGE=...");
    const spec = arg.args.slice("MCP_SERVER_PACKAGE=".length);
    assert.equal(spec, "@modelcontextprotocol/server-everything@2026.8.31");
    const m = /^(@?[^@]+)@(\d+\.\d+\.\d+)$/.exec(spec)!;
    assert.ok(m, `${spec}: name@x.y.z`);
    const install = stages[arg.stage]!.instrs.find((i) => i.op === "RUN" && i.args.includes("${MCP_SERVER_PACKAGE}"));
    assert.ok(install && /--prefix \/app\/mcp-server\b/.test(install.args), "npm install --prefix /app/mcp-server");
    const script = upstreamCommand.find((a) => a.startsWith("/app/mcp-server/"))!;
    assert.ok(script.startsWith(`/app/mcp-server/node_modules/${m[1]}/`), `upstream.command ${script} is inside ${m[1]}`);
    // the same entry point the GSC manifest names, and a file the package really has
    assert.ok(trustedEntries(gscManifest).includes(`file:${script}`));
    const local = join(REPO, "node_modules", script.slice(`/app/mcp-server/node_modules/`.length));
    assert.ok(existsSync(local), `${local}: the pinned server has this entry point (devDependency copy)`);
  });

  it("EXPOSEs the listen and metrics ports of configs/enclave.yaml", async () => {
    const c = await loadConfig({ file: join(REPO, "configs/enclave.yaml") });
    const exposed = finalStage.instrs
      .filter((i) => i.op === "EXPOSE")
      .flatMap((i) => i.args.split(/\s+/))
      .map((p) => Number(p.split("/")[0]));
    assert.deepEqual(
      exposed.sort((a, b) => a - b),
      [c.listen.port, c.metrics.listen!.port].sort((a, b) => a - b),
    );
    assert.equal(c.attestation.provider, "gramine");
    assert.equal(c.upstream.kind, "stdio");
  });
});

describe("gsc.config.yaml", () => {
  const cfg: Y = parseYaml(read("gsc.config.yaml"));

  it("has the keys GSC reads: Distro, Registry, Gramine.Repository + Branch (or Gramine.Image)", () => {
    assert.equal(typeof cfg.Distro, "string");
    assert.equal(typeof cfg.Registry, "string");
    assert.equal(typeof cfg.Gramine, "object");
    if (cfg.Gramine.Image !== undefined) assert.equal(typeof cfg.Gramine.Image, "string");
    else {
      assert.match(cfg.Gramine.Repository, /^https:\/\/github\.com\/.+\/gramine(\.git)?$/);
      assert.equal(typeof cfg.Gramine.Branch, "string");
      assert.match(cfg.Gramine.Branch, /^v\d+\.\d+(\.\d+)?$/, "a release tag: Gramine is part of MRENCLAVE");
    }
    const known = new Set(["Distro", "Registry", "Gramine"]);
    assert.deepEqual(
      Object.keys(cfg).filter((k) => !known.has(k)),
      [],
    );
  });

  it("Distro matches the Debian release of Dockerfile.gsc's base image", () => {
    const tag = external0Tag();
    const release = { bookworm: "debian:12", bullseye: "debian:11", jammy: "ubuntu:22.04", noble: "ubuntu:24.04" };
    const found = Object.entries(release).find(([codename]) => tag.includes(codename));
    assert.ok(found, `base image tag ${tag} names a GSC-supported distro`);
    assert.ok(cfg.Distro === "auto" || cfg.Distro === found[1], `Distro ${cfg.Distro} vs ${found[1]}`);
  });

  function external0Tag(): string {
    const names = new Set(stages.map((s) => s.name).filter(Boolean));
    const img = stages.find((s) => !names.has(s.image))!.image;
    return img.split("@")[0]!.split(":")[1] ?? "";
  }
});

describe("scripts/gsc-build and scripts/measure", () => {
  for (const script of SCRIPTS) {
    it(`${script}: executable, bash shebang, set -euo pipefail, bash -n`, () => {
      const text = read(script);
      assert.ok(text.startsWith("#!/usr/bin/env bash\n"));
      assert.match(text, /^set -euo pipefail$/m);
      assert.ok((statSync(join(REPO, script)).mode & 0o111) !== 0, "executable");
      const r = spawnSync(BASH, ["-n", join(REPO, script)], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    });

    it(`${script}: shellcheck`, (t) => {
      if (!existsSync("/usr/bin/shellcheck")) {
        t.diagnostic("shellcheck is not installed (Debian package shellcheck): skipped");
        return t.skip("shellcheck not installed");
      }
      const r = spawnSync("/usr/bin/shellcheck", [join(REPO, script)], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });

    it(`${script} --help: usage on stdout, exit 0, without docker or gsc`, () => {
      const r = runScript(script, ["--help"], { env: { PATH: realTempDir("empty-path") } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: ${script}`));
      assert.match(r.stdout, /exit status/);
    });

    it(`${script}: an unknown argument is a usage error (exit 2)`, () => {
      const r = runScript(script, ["--no-such-option"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown argument: --no-such-option/);
    });
  }

  /** A PATH holding only stubs of the named tools (each would fail if run). */
  function pathWith(...tools: string[]): string {
    const dir = realTempDir("stubs");
    for (const t of tools) writeExec(join(dir, t), '#!/bin/sh\necho "stub $0 must not run" >&2\nexit 127\n');
    return dir;
  }

  it("without docker or gsc: exit 2 and a message naming the missing tool (measure checks gsc first)", () => {
    const cases: [string, string[], RegExp][] = [
      ["scripts/gsc-build", [], /docker not found/],
      ["scripts/gsc-build", ["docker"], /gsc not found/],
      ["scripts/measure", [], /gsc not found/],
      ["scripts/measure", ["docker"], /gsc not found/],
      ["scripts/measure", ["gsc"], /docker not found/],
    ];
    for (const [script, tools, message] of cases) {
      const r = runScript(script, [], { env: { PATH: pathWith(...tools), HOME: realTempDir("home") } });
      assert.equal(r.code, 2, `${script} with ${tools.join(",") || "nothing"}: ${r.stderr}`);
      assert.match(r.stderr, message, `${script} with ${tools.join(",") || "nothing"}`);
      assert.doesNotMatch(r.stderr, /stub .* must not run|command not found/);
    }
    const r = runScript("scripts/gsc-build", [], { env: { PATH: pathWith("docker"), GSC_DIR: "/nonexistent/gsc" } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /GSC_DIR=\/nonexistent\/gsc has no executable gsc/);
  });

  it("measure --parse turns gsc info-image output into a client policy (issue 5 format) that parses as YAML", () => {
    const r = runScript("scripts/measure", ["--parse"], { input: INFO_IMAGE, env: { PATH: realTempDir("empty-path") } });
    assert.equal(r.code, 0, r.stderr);
    const p: Y = parseYaml(r.stdout);
    assert.deepEqual(Object.keys(p).sort(), ["allowDebug", "freshness", "measurements", "tcb", "trustRoots"]);
    assert.deepEqual(p.trustRoots, ["intel"]);
    assert.deepEqual(p.measurements, [{ mrenclave: SAMPLE_MRENCLAVE }, { mrsigner: SAMPLE_MRSIGNER, isvProdId: 1, minIsvSvn: 3 }]);
    assert.equal(p.allowDebug, false);
    assert.deepEqual(p.tcb, { require: true, acceptStatuses: ["UpToDate"] });
    assert.equal(p.freshness, "exporter");
    assert.match(r.stdout, /signed 2026-11-24/);
    assert.equal(r.stderr, "");
  });

  it("measure --parse also reads gramine-sgx-sigstruct-view's text (upper-case hex too) and warns about a debug enclave", () => {
    const view = `Attributes:\n    mr_signer: ${SAMPLE_MRSIGNER.toUpperCase()}\n    mr_enclave: ${SAMPLE_MRENCLAVE}\n    isv_prod_id: 7\n    isv_svn: 0\n    debug_enclave: True\n`;
    const dir = realTempDir("policy");
    const out = join(dir, "policy.yaml");
    const r = runScript("scripts/measure", ["--parse", "--out", out], { input: view });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /DEBUG enclave/);
    assert.match(r.stderr, new RegExp(`wrote ${out}`));
    const p: Y = parseYaml(readFileSync(out, "utf8"));
    assert.deepEqual(p.measurements, [{ mrenclave: SAMPLE_MRENCLAVE }, { mrsigner: SAMPLE_MRSIGNER, isvProdId: 7, minIsvSvn: 0 }]);
    assert.equal(p.allowDebug, false, "the policy still refuses debug enclaves");
  });

  it("measure --parse fails (exit 1) on output without measurements or with malformed ones", () => {
    for (const [input, message] of [
      ["Could not find graminized Docker image gsc-attestable-mcp-app.\n", /no mr_enclave/],
      [INFO_IMAGE.replace(/mr_signer = .*\n/, ""), /no mr_signer/],
      [INFO_IMAGE.replace(SAMPLE_MRENCLAVE, "abcd"), /mr_enclave is not 32 bytes of hex/],
      [INFO_IMAGE.replace("isv_svn = 3", "isv_svn = 70000"), /isv_svn is not a 16-bit number/],
    ] as const) {
      const r = runScript("scripts/measure", ["--parse"], { input });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, "");
    }
  });

  /** Stub docker and a fake GSC checkout (with templates/) that log their calls. */
  function fakeTools() {
    const dir = realTempDir("gsc-flow");
    const bin = join(dir, "bin");
    const gscDir = join(dir, "gsc");
    mkdirSync(bin);
    mkdirSync(join(gscDir, "templates"), { recursive: true });
    const log = join(dir, "calls.log");
    writeExec(
      join(bin, "docker"),
      `#!/bin/sh
echo "docker $*" >> "${log}"
if [ "$1" = image ] && [ "$2" = inspect ]; then
  [ "$3" = gsc-attestable-mcp-app ] && [ -f "${dir}/signed" ] && exit 0
  exit 1
fi
exit 0
`,
    );
    writeExec(
      join(gscDir, "gsc"),
      `#!/bin/sh
echo "gsc[$(pwd)] $*" >> "${log}"
[ "$1" = sign-image ] && touch "${dir}/signed"
[ "$1" = info-image ] && printf '%s\\n' '${INFO_IMAGE.replace(/'/g, "")}'
exit 0
`,
    );
    symlinkSync(join(gscDir, "gsc"), join(bin, "gsc"));
    const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: join(dir, "home"), XDG_CONFIG_HOME: join(dir, "xdg") };
    const calls = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
    return { dir, gscDir, env, calls, log };
  }

  it("gsc-build: docker build, gsc build, gsc sign-image in GSC's directory with absolute paths; generates and then reuses the key", (t) => {
    const haveOpenssl = spawnSync("openssl", ["version"]).status === 0;
    if (!haveOpenssl) {
      t.diagnostic("openssl is not installed: key generation not exercised");
      return t.skip("openssl not installed");
    }
    const f = fakeTools();
    const key = join(f.env.XDG_CONFIG_HOME, "attestable-mcp", "enclave-key.pem");
    const r = runScript("scripts/gsc-build", [], { env: f.env, cwd: f.dir });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`generated a new enclave signing key: ${key}`));
    assert.deepEqual(f.calls(), [
      `docker build -f ${REPO}/Dockerfile.gsc -t attestable-mcp-app ${REPO}`,
      "docker image inspect gsc-attestable-mcp-app",
      "docker image inspect gsc-attestable-mcp-app-unsigned",
      `gsc[${f.gscDir}] build --rm -c ${REPO}/gsc.config.yaml attestable-mcp-app ${REPO}/enclave/attestable-mcp.manifest`,
      `gsc[${f.gscDir}] sign-image -c ${REPO}/gsc.config.yaml attestable-mcp-app ${key}`,
      "docker image inspect gsc-attestable-mcp-app",
    ]);
    // an SGX signing key: RSA-3072, public exponent 3, private to its owner
    const details = createPrivateKey(readFileSync(key)).asymmetricKeyDetails!;
    assert.equal(details.modulusLength, 3072);
    assert.equal(details.publicExponent, 3n);
    assert.equal(statSync(key).mode & 0o077, 0, "key readable by its owner only");
    const before = readFileSync(key, "utf8");

    // second run: same key (same MRSIGNER), the previous GSC image replaced, an MCP server chosen
    const again = runScript("scripts/gsc-build", ["--mcp-server", "@acme/mcp-server@1.2.3"], { env: f.env, cwd: f.dir });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /existing; MRSIGNER stays the same/);
    assert.equal(readFileSync(key, "utf8"), before);
    const calls = f.calls().slice(6);
    assert.equal(calls[0], `docker build -f ${REPO}/Dockerfile.gsc -t attestable-mcp-app --build-arg MCP_SERVER_PACKAGE=@acme/mcp-server@1.2.3 ${REPO}`);
    assert.ok(calls.includes("docker image rm gsc-attestable-mcp-app"), calls.join("\n"));
  });

  it("gsc-build --key: a relative path is made absolute for gsc (which runs in its own directory)", () => {
    const f = fakeTools();
    writeFileSync(join(f.dir, "my-key.pem"), "not checked by the stub\n");
    const r = runScript("scripts/gsc-build", ["--key", "my-key.pem"], { env: f.env, cwd: f.dir });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(f.calls().includes(`gsc[${f.gscDir}] sign-image -c ${REPO}/gsc.config.yaml attestable-mcp-app ${f.dir}/my-key.pem`), f.calls().join("\n"));
    const missing = runScript("scripts/gsc-build", ["--key", "nope.pem"], { env: f.env, cwd: f.dir });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--key nope\.pem: not a readable file/);
  });

  it("measure runs gsc info-image on the GSC image and writes the policy file", () => {
    const f = fakeTools();
    const r = runScript("scripts/measure", ["--out", "policy.yaml"], { env: f.env, cwd: f.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(f.calls(), [`gsc[${f.gscDir}] info-image gsc-attestable-mcp-app`]);
    const p: Y = parseYaml(readFileSync(join(f.dir, "policy.yaml"), "utf8"));
    assert.equal(p.measurements[0].mrenclave, SAMPLE_MRENCLAVE);
    assert.equal(p.measurements[1].mrsigner, SAMPLE_MRSIGNER);
    assert.equal(p.measurements[1].isvProdId, 1);
  });
});

describe(".dockerignore", () => {
  it("keeps node_modules, builds, the dev PKI and keys out of the build context", async () => {
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { REPO } = await import("../support/vectors.js");
    const lines = readFileSync(join(REPO, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim());
    for (const entry of ["node_modules", "dist", ".attestable-mcp", "**/*.key", "**/*.pem"]) {
      if (!lines.includes(entry)) throw new Error(`.dockerignore lacks ${entry}`);
    }
  });
});
