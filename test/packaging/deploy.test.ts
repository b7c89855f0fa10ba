/**
 * The deployment files, checked where neither Docker nor a cluster exists: configs/docker-compose.yaml
 * (the sidecar shape) and configs/k8s/ (the scale-out shape) parse, agree with configs/enclave.yaml
 * (loaded with the proxy's own loader) and with each other, publish nothing but the RA-TLS port and
 * loopback metrics, and name only real config variables; the compose health check runs against a
 * real `serve` of configs/enclave.yaml with the dev profile's environment; and the section "Run it
 * in an enclave" of docs/enclave.md names what exists. configs/docker-compose.access.yaml (docs/access.md)
 * parses, and its config loads with a keys file mounted where it points.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse as parseToml } from "smol-toml";
import { parse, parseAllDocuments } from "yaml";
import { newKey } from "../../proxy/cli/new-key.js";
import { CONFIG_KEYS, ConfigError, envName, loadConfig, type Config } from "../../proxy/server/config.js";
import { EVERYTHING } from "../support/everything.js";
import { CLI, REPO } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Y = any;

const ENCLAVE_CONFIG = join(REPO, "configs/enclave.yaml");
const COMPOSE_FILE = join(REPO, "configs/docker-compose.yaml");
const K8S_DIR = join(REPO, "configs/k8s");
const APP_IMAGE = "attestable-mcp-app";
const GSC_IMAGE = "gsc-attestable-mcp-app";
const AESMD_DIR = "/var/run/aesmd";
const QCNL = "/etc/sgx_default_qcnl.conf";
const ENV_PREFIX = "ATTESTABLE_MCP_";

/** The repository name of an image reference: no registry, path, tag or digest. */
function imageName(ref: string): string {
  const last = ref.split("@")[0]!.split("/").pop()!;
  return last.split(":")[0]!;
}

/** Compose durations ("30s", "1m30s", "500ms") in ms. */
function composeDuration(v: string): number {
  const parts = [...v.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g)];
  assert.ok(parts.length > 0 && parts.map((p) => p[0]).join("") === v, `not a compose duration: ${v}`);
  const unit: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return parts.reduce((ms, p) => ms + Number(p[1]) * unit[p[2]!]!, 0);
}

interface Published {
  hostIp: string | null;
  published: number | null;
  target: number;
}

/** Compose `ports:` in short ("[IP:][HOST:]CONTAINER[/PROTO]") or long syntax. */
function publishedPorts(svc: Y): Published[] {
  return ((svc.ports ?? []) as Y[]).map((p) => {
    if (typeof p === "object" && p !== null) {
      return { hostIp: p.host_ip ?? null, published: p.published === undefined ? null : Number(p.published), target: Number(p.target) };
    }
    const parts = String(p).split("/")[0]!.split(":");
    assert.ok(parts.length >= 1 && parts.length <= 3 && parts.every((x) => /^[\d.]+$/.test(x)), `unexpected port mapping ${String(p)}`);
    const target = Number(parts.pop());
    const published = parts.length ? Number(parts.pop()) : null;
    return { hostIp: parts.length ? parts[0]! : null, published, target };
  });
}

/** Compose `environment:` as a map or a list of "K=V". */
function environment(svc: Y): Record<string, string> {
  const env = svc.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e: string) => [e.split("=")[0]!, e.slice(e.indexOf("=") + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

/** Compose `devices:` as container paths. */
function devicePaths(svc: Y): string[] {
  return ((svc.devices ?? []) as Y[]).map((d) => (typeof d === "string" ? (d.split(":")[1] ?? d.split(":")[0]!) : String(d.target ?? d.source)));
}

/** Compose `volumes:` as { source, target, readOnly }. */
function volumes(svc: Y): { source: string; target: string; readOnly: boolean }[] {
  return ((svc.volumes ?? []) as Y[]).map((v) => {
    if (typeof v === "object") return { source: String(v.source), target: String(v.target), readOnly: v.read_only === true };
    const [source, target, mode] = String(v).split(":");
    return { source: source!, target: target ?? source!, readOnly: (mode ?? "").split(",").includes("ro") };
  });
}

/** Kubernetes quantity → bytes (binary and decimal suffixes) or plain number. */
function quantity(q: unknown): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  assert.ok(m, `not a quantity: ${String(q)}`);
  const mult: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? mult[m[2]]! : 1);
}

let config: Config;
let compose: Y;
let composeText: string;
let k8s: { file: string; doc: Y }[];
const byKind = (kind: string): Y[] => k8s.filter((d) => d.doc.kind === kind).map((d) => d.doc);
const one = (kind: string): Y => {
  const all = byKind(kind);
  assert.equal(all.length, 1, `exactly one ${kind} in configs/k8s/`);
  return all[0];
};

before(async () => {
  config = await loadConfig({ file: ENCLAVE_CONFIG });
  composeText = readFileSync(COMPOSE_FILE, "utf8");
  compose = parse(composeText);
  k8s = [];
  for (const f of readdirSync(K8S_DIR).sort()) {
    if (!/\.ya?ml$/.test(f)) continue;
    for (const d of parseAllDocuments(readFileSync(join(K8S_DIR, f), "utf8"))) {
      assert.deepEqual(d.errors, [], `${f}: ${d.errors.map((e) => e.message).join("; ")}`);
      const doc = d.toJS();
      if (doc !== null) k8s.push({ file: f, doc });
    }
  }
});

describe("configs/enclave.yaml, as the images run it", () => {
  it("gramine provider, a stdio MCP server, RA-TLS on 8443 and metrics on 9464 for every interface of the container", () => {
    assert.equal(config.attestation.provider, "gramine");
    assert.equal(config.upstream.kind, "stdio");
    assert.deepEqual(config.listen, { host: "0.0.0.0", port: 8443 });
    assert.deepEqual(config.metrics.listen, { host: "0.0.0.0", port: 9464 });
    assert.ok(config.shutdown.drainMs > 0);
  });
});

describe("configs/docker-compose.yaml (the sidecar shape)", () => {
  const svc = (name: string): Y => {
    const s = compose.services?.[name];
    assert.ok(s, `service ${name}`);
    return s;
  };

  it("parses; the enclave service runs the GSC image, always (no profile), with its argv left to the image", () => {
    assert.equal(typeof compose.services, "object");
    const proxy = svc("proxy");
    assert.equal(imageName(proxy.image), GSC_IMAGE);
    assert.equal(proxy.profiles, undefined);
    assert.equal(proxy.command, undefined, "GSC fixes the argv (trusted_argv); docker run arguments are ignored");
    assert.equal(proxy.entrypoint, undefined);
  });

  it("the enclave gets /dev/sgx_enclave, /dev/sgx_provision, aesmd's socket and the PCCS setting (read-only), and nothing privileged", () => {
    const proxy = svc("proxy");
    const devices = devicePaths(proxy);
    assert.ok(devices.includes("/dev/sgx_enclave"), String(devices));
    assert.ok(devices.includes("/dev/sgx_provision"), String(devices));
    const vols = volumes(proxy);
    assert.ok(
      vols.some((v) => v.source === AESMD_DIR && v.target === AESMD_DIR),
      "aesmd socket directory mounted",
    );
    assert.ok(
      vols.some((v) => v.source === QCNL && v.target === QCNL && v.readOnly),
      "qcnl config mounted read-only",
    );
    for (const [name, s] of Object.entries(compose.services as Record<string, Y>)) {
      assert.notEqual(s.privileged, true, `${name} is privileged`);
      assert.notEqual(s.network_mode, "host", `${name} uses the host network`);
    }
  });

  it("publishes the RA-TLS port (listen) and the metrics port on the host's loopback only, matching configs/enclave.yaml", () => {
    const ports = publishedPorts(svc("proxy"));
    assert.deepEqual(
      ports.map((p) => [p.hostIp, p.published, p.target]),
      [
        [null, config.listen.port, config.listen.port],
        ["127.0.0.1", config.metrics.listen!.port, config.metrics.listen!.port],
      ],
    );
  });

  it("never publishes the MCP server: no service maps any port but 8443 and loopback 9464, and none exposes one", () => {
    for (const [name, s] of Object.entries(compose.services as Record<string, Y>)) {
      assert.equal(s.expose, undefined, `${name} exposes ports`);
      for (const p of publishedPorts(s)) {
        const tls = p.target === config.listen.port && p.published === config.listen.port;
        const metrics = p.target === config.metrics.listen!.port && p.hostIp === "127.0.0.1";
        assert.ok(tls || metrics, `${name} publishes ${JSON.stringify(p)}`);
      }
    }
  });

  it("stop grace periods outlast shutdown.drain; the enclave service sets no ATTESTABLE_MCP_* (its config is measured)", () => {
    for (const [name, s] of Object.entries(compose.services as Record<string, Y>)) {
      assert.ok(s.stop_grace_period, `${name}: docker's default (10s) would end the drain with SIGKILL`);
      assert.ok(composeDuration(s.stop_grace_period) > config.shutdown.drainMs, `${name}: stop_grace_period ${s.stop_grace_period}`);
    }
    assert.deepEqual(
      Object.keys(environment(svc("proxy"))).filter((k) => k.startsWith(ENV_PREFIX)),
      [],
    );
  });

  it("the dev profile runs the plain app image with the dev provider, no devices, built from Dockerfile.gsc", async () => {
    const dev = svc("proxy-dev");
    assert.deepEqual(dev.profiles, ["dev"]);
    assert.equal(imageName(dev.image), APP_IMAGE);
    assert.equal(dev.devices, undefined);
    assert.equal(resolve(REPO, "configs", dev.build.context), REPO);
    assert.equal(dev.build.dockerfile, "Dockerfile.gsc");
    const env = environment(dev);
    assert.equal(env.ATTESTABLE_MCP_ATTESTATION_PROVIDER, "dev");
    assert.equal(env.ATTESTABLE_MCP_ATTESTATION_DEV_DIR, "/tmp/attestable-mcp-dev");
    const c = await loadConfig({ file: ENCLAVE_CONFIG, env });
    assert.equal(c.attestation.provider, "dev");
    assert.equal(c.attestation.devDir, "/tmp/attestable-mcp-dev");
    assert.deepEqual(c.listen, config.listen);
  });

  it("both services check health the same way, against /healthz on the listen port", () => {
    const test = svc("proxy").healthcheck?.test;
    assert.deepEqual(svc("proxy-dev").healthcheck?.test, test);
    assert.equal(test[0], "CMD");
    assert.equal(test[1], "/usr/local/bin/node");
    assert.equal(test[2], "-e");
    assert.ok(String(test[3]).includes(`https://127.0.0.1:${config.listen.port}/healthz`));
    assert.ok(!String(test[3]).includes("$"), "no compose interpolation in the script");
  });
});

describe("configs/k8s/ (the scale-out shape)", () => {
  const container = (): Y => {
    const cs = one("Deployment").spec.template.spec.containers as Y[];
    assert.equal(cs.length, 1, "one container: the MCP server is a stdio child inside the enclave, not a sidecar");
    return cs[0];
  };
  const portByName = (p: number | string): number => {
    if (typeof p === "number") return p;
    const found = (container().ports as Y[]).find((x) => x.name === p);
    assert.ok(found, `named port ${p}`);
    return found.containerPort;
  };

  it("every file is plain Kubernetes objects, so `kubectl apply -f configs/k8s/` takes the directory as it is", () => {
    assert.ok(k8s.length >= 3);
    for (const { file, doc } of k8s) {
      assert.equal(typeof doc.apiVersion, "string", `${file}: apiVersion`);
      assert.equal(typeof doc.kind, "string", `${file}: kind`);
      assert.equal(typeof doc.metadata?.name, "string", `${file}: metadata.name`);
    }
    assert.deepEqual([...new Set(k8s.map((d) => d.doc.kind))].sort(), ["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service"]);
  });

  it("Deployment: 2 replicas of the GSC image, its argv and config left to the image", () => {
    const d = one("Deployment");
    assert.equal(d.apiVersion, "apps/v1");
    assert.equal(d.spec.replicas, 2);
    const c = container();
    assert.equal(imageName(c.image), GSC_IMAGE);
    assert.equal(c.command, undefined);
    assert.equal(c.args, undefined);
  });

  it("container ports, probes, scrape annotations and the Service's target agree with configs/enclave.yaml", () => {
    const d = one("Deployment");
    const c = container();
    const ports = Object.fromEntries((c.ports as Y[]).map((p) => [p.name, p.containerPort]));
    assert.deepEqual(ports, { tls: config.listen.port, metrics: config.metrics.listen!.port });
    for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
      if (probe === "startupProbe" && c[probe] === undefined) continue;
      const g = c[probe]?.httpGet;
      assert.ok(g, `${probe} is an httpGet`);
      assert.equal(g.path, "/healthz", probe);
      assert.equal(g.scheme, "HTTPS", probe);
      assert.equal(portByName(g.port), config.listen.port, probe);
    }
    const a = d.spec.template.metadata.annotations;
    assert.equal(a["prometheus.io/scrape"], "true");
    assert.equal(a["prometheus.io/port"], String(config.metrics.listen!.port));
    assert.equal(a["prometheus.io/path"], "/metrics");
    const svc = one("Service");
    assert.equal(svc.spec.ports.length, 1, "the Service carries the RA-TLS port only");
    assert.equal(portByName(svc.spec.ports[0].targetPort), config.listen.port);
    assert.equal(svc.spec.ports[0].protocol ?? "TCP", "TCP");
  });

  it("SGX device-plugin resources (epc, enclave, provision), requests equal to limits", () => {
    const r = container().resources;
    for (const key of ["sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"]) {
      assert.ok(r.limits?.[key] !== undefined, `limits ${key}`);
      if (r.requests?.[key] !== undefined) assert.equal(String(r.requests[key]), String(r.limits[key]), `${key}: extended resources need requests == limits`);
    }
    assert.ok(quantity(r.limits["sgx.intel.com/epc"]) >= 2 ** 20);
    assert.equal(quantity(r.limits["sgx.intel.com/enclave"]), 1);
    assert.equal(quantity(r.limits["sgx.intel.com/provision"]), 1);
  });

  it("the EPC requested holds at least one enclave of the manifest's sgx.enclave_size (once enclave/ has the manifest)", (t) => {
    const manifest = join(REPO, "enclave/attestable-mcp.manifest");
    if (!existsSync(manifest)) return t.skip("enclave/attestable-mcp.manifest is not there yet");
    const size = (parseToml(readFileSync(manifest, "utf8")) as Y).sgx?.enclave_size;
    assert.equal(typeof size, "string", "sgx.enclave_size");
    const m = /^(\d+)([KMG])$/.exec(size);
    assert.ok(m, `sgx.enclave_size ${size}`);
    const bytes = Number(m[1]) * { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2] as "K" | "M" | "G"];
    assert.ok(quantity(container().resources.limits["sgx.intel.com/epc"]) >= bytes, `sgx.intel.com/epc below sgx.enclave_size ${size}`);
  });

  it("aesmd's socket directory and the node's PCCS setting are mounted; nothing runs privileged", () => {
    const pod = one("Deployment").spec.template.spec;
    const c = container();
    const vol = (mountPath: string): Y => {
      const m = (c.volumeMounts as Y[]).find((x) => x.mountPath === mountPath);
      assert.ok(m, `a volume mounted at ${mountPath}`);
      return { mount: m, volume: (pod.volumes as Y[]).find((v) => v.name === m.name) };
    };
    const aesmd = vol(AESMD_DIR);
    assert.equal(aesmd.volume.hostPath?.path, AESMD_DIR);
    const qcnl = vol(QCNL);
    assert.equal(qcnl.mount.readOnly, true);
    assert.ok(qcnl.volume.hostPath?.path === QCNL || qcnl.volume.configMap, "qcnl from the node or a ConfigMap");
    assert.notEqual(c.securityContext?.privileged, true);
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(pod.hostNetwork, undefined);
  });

  it("the Service and the PodDisruptionBudget select exactly the Deployment's pods; the Service keeps clients on one replica", () => {
    const d = one("Deployment");
    const labels = d.spec.template.metadata.labels;
    assert.deepEqual(d.spec.selector.matchLabels, Object.fromEntries(Object.keys(d.spec.selector.matchLabels).map((k) => [k, labels[k]])));
    const svc = one("Service");
    assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
    assert.equal(svc.spec.sessionAffinity, "ClientIP");
    assert.ok(["LoadBalancer", "ClusterIP", undefined].includes(svc.spec.type));
    const pdb = one("PodDisruptionBudget");
    assert.equal(pdb.apiVersion, "policy/v1");
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
    assert.ok(pdb.spec.minAvailable < d.spec.replicas, "a drain can still move a replica");
  });

  it("terminationGracePeriodSeconds outlasts shutdown.drain", () => {
    const t = one("Deployment").spec.template.spec.terminationGracePeriodSeconds;
    assert.equal(typeof t, "number");
    assert.ok(t * 1000 > config.shutdown.drainMs, `${t}s vs drain ${config.shutdown.drainMs}ms`);
  });

  it("service links are off: the variables they would inject for this Service are ATTESTABLE_MCP_* names the loader rejects", async () => {
    const pod = one("Deployment").spec.template.spec;
    assert.equal(pod.enableServiceLinks, false);
    const svc = one("Service");
    const base = String(svc.metadata.name).toUpperCase().replace(/-/g, "_");
    const port = svc.spec.ports[0].port;
    const injected: Record<string, string> = {
      [`${base}_SERVICE_HOST`]: "10.0.0.1",
      [`${base}_SERVICE_PORT`]: String(port),
      [`${base}_PORT`]: `tcp://10.0.0.1:${port}`,
      [`${base}_PORT_${port}_TCP`]: `tcp://10.0.0.1:${port}`,
    };
    if (base.startsWith(ENV_PREFIX)) {
      await assert.rejects(loadConfig({ file: ENCLAVE_CONFIG, env: injected }), (e: unknown) => e instanceof ConfigError && /unknown variable/.test(e.message));
    }
  });
});

describe("ATTESTABLE_MCP_* variables in the deployment files", () => {
  it("every one set in compose or k8s is a real config key, and configs/enclave.yaml loads with all of them", async () => {
    const vars: Record<string, string> = {};
    for (const s of Object.values(compose.services as Record<string, Y>)) Object.assign(vars, environment(s));
    for (const { doc } of k8s) {
      for (const c of (doc.spec?.template?.spec?.containers ?? []) as Y[]) for (const e of (c.env ?? []) as Y[]) if (e.value !== undefined) vars[e.name] = String(e.value);
    }
    const ours = Object.fromEntries(Object.entries(vars).filter(([k]) => k.startsWith(ENV_PREFIX)));
    assert.ok(Object.keys(ours).length > 0, "the dev profile sets some");
    for (const name of Object.keys(ours))
      assert.ok(
        CONFIG_KEYS.some((k) => envName(k) === name),
        `${name} is no config key`,
      );
    const c = await loadConfig({ file: ENCLAVE_CONFIG, env: ours });
    assert.equal(c.attestation.provider, "dev");
  });
});

describe("the compose health check against a real serve of configs/enclave.yaml (dev profile environment)", { timeout: 60_000 }, () => {
  const children: ChildProcess[] = [];
  const devDir = join(tempDir("amcp-deploy-"), "dev");

  async function serveDev(command: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
    const env = { PATH: process.env.PATH ?? "", ...environment(compose.services["proxy-dev"]), ATTESTABLE_MCP_ATTESTATION_DEV_DIR: devDir };
    const child = spawn(
      process.execPath,
      [CLI, "serve", "--config", ENCLAVE_CONFIG, "--listen", "127.0.0.1:0", "--set", "metrics.listen=null", "--set", `upstream.command=${JSON.stringify(command)}`, "--log-level", "warn"],
      { cwd: REPO, env, stdio: ["ignore", "ignore", "pipe"] },
    );
    children.push(child);
    let err = "";
    child.stderr!.on("data", (c) => (err += c));
    const deadline = Date.now() + 20_000;
    while (!/serving https:\/\/127\.0\.0\.1:(\d+)/.test(err) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    const port = Number(/serving https:\/\/127\.0\.0\.1:(\d+)/.exec(err)?.[1]);
    assert.ok(port > 0, err);
    assert.match(err, /with dev attestation/);
    return {
      port,
      stop: async () => {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      },
    };
  }

  function healthcheck(port: number): Promise<number | null> {
    const test = compose.services["proxy-dev"].healthcheck.test as string[];
    const script = test[3]!.replace(`127.0.0.1:${config.listen.port}`, `127.0.0.1:${port}`);
    const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
    return new Promise((r) => child.once("exit", (code) => r(code)));
  }

  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  it("exit 0 while /healthz is 200; exit 1 on 503 (the MCP server cannot be started) and when nothing listens", async () => {
    const good = await serveDev([process.execPath, EVERYTHING, "stdio"]);
    assert.equal(await healthcheck(good.port), 0);
    await good.stop();
    assert.equal(await healthcheck(good.port), 1, "connection refused");

    const bad = await serveDev(["/nonexistent/mcp-server"]);
    assert.equal(await healthcheck(bad.port), 1, "503");
    await bad.stop();
  });
});

describe('docs/enclave.md "Run it in an enclave"', () => {
  const readme = readFileSync(join(REPO, "docs/enclave.md"), "utf8");
  const start = readme.indexOf("\n## Run it in an enclave\n");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end);
  /** Files this change wrote (or that already exist); the rest come with the enclave packaging. */
  const MUST_EXIST = ["configs/enclave.yaml", "configs/docker-compose.yaml", "configs/k8s/", "configs/k8s/deployment.yaml", "configs/k8s/service.yaml", "configs/k8s/pdb.yaml"];
  const PACKAGING = ["Dockerfile.gsc", "gsc.config.yaml", "scripts/gsc-build", "scripts/measure", "enclave/"];

  it("follows the attestation providers section and comes before what only SGX hardware shows", () => {
    assert.ok(start > 0);
    assert.ok(readme.indexOf("\n## Attestation providers\n") < start);
    const next = "## What is checked here and what only on SGX hardware\n";
    assert.equal(readme.slice(end + 1, end + 1 + next.length), next);
  });

  it("names every script and file it documents, with the commands: build, sign, measure, run, verify", () => {
    for (const f of [...MUST_EXIST, ...PACKAGING]) assert.ok(section.includes(f), f);
    for (const cmd of [
      "scripts/gsc-build --key",
      "scripts/measure --out policy.yaml",
      "docker compose -f configs/docker-compose.yaml up",
      "docker compose -f configs/docker-compose.yaml --profile dev up",
      "kubectl apply -f configs/k8s/",
      "openssl s_client -connect",
      "attestable-mcp inspect cert.pem",
      "attestable-mcp verify",
      "MCP_SERVER_PACKAGE",
      "upstream.command",
      "sessionAffinity: ClientIP",
    ]) {
      assert.ok(section.includes(cmd), cmd);
    }
  });

  it("every repository path it names exists, or is one of the enclave packaging files", () => {
    for (const f of MUST_EXIST) assert.ok(existsSync(join(REPO, f)), f);
    const named = new Set([...section.matchAll(/(?<![\w/.-])((?:configs|scripts|enclave)\/[\w./-]*|Dockerfile\.gsc|gsc\.config\.yaml)/g)].map((m) => m[1]!.replace(/[.,]$/, "")));
    for (const p of named) {
      if (PACKAGING.some((x) => p === x || (x.endsWith("/") && p.startsWith(x)))) continue;
      assert.ok(existsSync(join(REPO, p)), `docs/enclave.md names ${p}, which does not exist`);
    }
  });

  it("its compose commands name real services, and the dev root it copies is where the dev profile puts it", () => {
    const services = Object.keys(compose.services);
    const lines = [...section.matchAll(/^docker compose -f configs\/docker-compose\.yaml (.*)$/gm)].map((m) => m[1]!.split("#")[0]!.trim().split(/\s+/));
    assert.ok(lines.length >= 3);
    for (const words of lines) {
      const sub = words.findIndex((w) => w === "up" || w === "cp");
      assert.ok(sub >= 0, words.join(" "));
      const named = words.slice(sub + 1).filter((w) => !w.startsWith("-"));
      const targets = words[sub] === "cp" ? [named[0]!.split(":")[0]!] : named;
      for (const t of targets) assert.ok(services.includes(t), `docs/enclave.md names compose service ${t}`);
    }
    const cp = /cp ([\w-]+):(\S+)\/root\.pem/.exec(section);
    assert.ok(cp, "docs/enclave.md copies the dev root out of the container");
    assert.equal(cp[2], environment(compose.services[cp[1]!]).ATTESTABLE_MCP_ATTESTATION_DEV_DIR);
  });
});

describe("configs/docker-compose.access.yaml (who may call, worked in docs/access.md)", () => {
  const file = join(REPO, "configs/docker-compose.access.yaml");
  let access: Y;
  let proxy: Y;
  let served: Config;
  let keysFile: string;
  before(async () => {
    access = parse(readFileSync(file, "utf8"));
    proxy = access.services?.proxy;
    // The config as the container sees it: configs/access.yaml, its mount directory standing in
    // for the container's /etc/attestable-mcp, with a keys file there made by new-key.
    const dir = tempDir("amcp-access-compose-");
    const text = readFileSync(join(REPO, "configs/access.yaml"), "utf8");
    keysFile = /keysFile: (\S+) \}/.exec(text)?.[1] ?? "";
    writeFileSync(join(dir, "serve.yaml"), text.replace(keysFile, join(dir, basename(keysFile))));
    newKey("alice", join(dir, basename(keysFile)));
    served = await loadConfig({ file: join(dir, "serve.yaml") });
  });

  it("parses; one service, the plain app image built from Dockerfile.gsc, serving the mounted config", () => {
    assert.deepEqual(Object.keys(access.services), ["proxy"]);
    assert.equal(imageName(proxy.image), APP_IMAGE);
    assert.equal(resolve(REPO, "configs", proxy.build.context), REPO);
    assert.equal(proxy.build.dockerfile, "Dockerfile.gsc");
    assert.deepEqual(proxy.entrypoint.slice(0, 4), ["/usr/local/bin/node", "/app/dist/proxy/cli/main.js", "serve", "--config"]);
    const target = proxy.entrypoint[4] as string;
    const mounts = volumes(proxy);
    const cfg = mounts.find((v) => v.target === target);
    assert.ok(cfg?.readOnly && resolve(REPO, "configs", cfg.source) === join(REPO, "configs/access.yaml"), JSON.stringify(mounts));
  });

  it("its config loads: bearer keys from a read-only mount beside it, a stdio MCP server, dev attestation", () => {
    assert.equal(served.auth.mode, "bearer");
    assert.ok(served.auth.mode === "bearer" && served.auth.keys.length === 1 && served.auth.keys[0]!.name === "alice");
    assert.equal(served.upstream.kind, "stdio");
    assert.equal(served.attestation.provider, "dev");
    const cfgTarget = proxy.entrypoint[4] as string;
    assert.ok(isAbsolute(keysFile), `keysFile is absolute, as the container's working directory is not the config's: ${keysFile}`);
    assert.equal(dirname(keysFile), dirname(cfgTarget), "the keys file sits beside the config");
    const keys = volumes(proxy).find((v) => v.target === keysFile);
    assert.ok(keys?.readOnly, "the keys file is mounted read-only where keysFile points");
    assert.equal(resolve(REPO, "configs", keys.source), join(REPO, "configs/keys.txt"));
  });

  it("publishes the RA-TLS port (listen) and loopback metrics only; the health check asks /healthz on the listen port", () => {
    const ports = publishedPorts(proxy);
    assert.deepEqual(ports.map((p) => p.target).sort(), [served.listen.port, served.metrics.listen?.port].sort());
    assert.equal(ports.find((p) => p.target === served.metrics.listen?.port)?.hostIp, "127.0.0.1");
    assert.equal(proxy.expose, undefined);
    assert.ok(String(proxy.healthcheck.test[3]).includes(`https://127.0.0.1:${served.listen.port}/healthz`));
    assert.ok(composeDuration(proxy.stop_grace_period) > served.shutdown.drainMs);
  });

  it("docs/access.md runs it with the commands its header gives", () => {
    const doc = readFileSync(join(REPO, "docs/access.md"), "utf8");
    assert.ok(doc.includes("docker compose -f configs/docker-compose.access.yaml up -d --build"));
    assert.ok(doc.includes("new-key alice --keys-file configs/keys.txt > alice.token"));
  });
});
