/**
 * configs/k8s/ against what an anonymous client could otherwise reach or exhaust: the metrics
 * listener (no TLS, no authentication, bound to every interface by configs/enclave.yaml) admits
 * only the cluster's monitoring through a NetworkPolicy, while the RA-TLS port stays open to
 * everyone; and the EPC the pod requests holds every enclave the config lets it start: the proxy
 * and each stdio child (upstream.maxSessions + upstream.modernChildren), each of the manifest's
 * sgx.enclave_size. Values are read from configs/enclave.yaml with the proxy's own loader and
 * from enclave/attestable-mcp.manifest, so a change to either without the other fails here.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parse as parseToml } from "smol-toml";
import { parseAllDocuments } from "yaml";
import { type Config, loadConfig } from "../../proxy/server/config.js";
import { REPO } from "../support/vectors.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Y = any;

const GIB = 2 ** 30;
let config: Config;
const docs: Y[] = [];
const one = (kind: string): Y => {
  const all = docs.filter((d) => d.kind === kind);
  assert.equal(all.length, 1, `exactly one ${kind} in configs/k8s/`);
  return all[0];
};
const container = (): Y => one("Deployment").spec.template.spec.containers[0];
const portByName = (p: number | string): number => {
  if (typeof p === "number") return p;
  const found = (container().ports as Y[]).find((x) => x.name === p);
  assert.ok(found, `named port ${p}`);
  return found.containerPort;
};

/** Kubernetes binary quantities (what the files use for EPC) in bytes. */
function bytes(q: unknown): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti)$/.exec(String(q));
  assert.ok(m, `not a binary quantity: ${String(q)}`);
  return Number(m[1]) * { Ki: 2 ** 10, Mi: 2 ** 20, Gi: GIB, Ti: 2 ** 40 }[m[2] as "Ki"];
}

before(async () => {
  config = await loadConfig({ file: join(REPO, "configs/enclave.yaml") });
  const dir = join(REPO, "configs/k8s");
  for (const f of readdirSync(dir).filter((x) => /\.ya?ml$/.test(x))) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), "utf8"))) if (d.toJS() !== null) docs.push(d.toJS());
  }
});

describe("configs/k8s/: bounds", () => {
  it("metrics are reachable only from the cluster's monitoring: a NetworkPolicy over the Deployment's pods admits the metrics port from a namespace selector only, the RA-TLS port from anywhere", () => {
    const np = one("NetworkPolicy");
    assert.equal(np.apiVersion, "networking.k8s.io/v1");
    assert.deepEqual(np.spec.podSelector.matchLabels, one("Deployment").spec.selector.matchLabels);
    assert.ok((np.spec.policyTypes as string[]).includes("Ingress"));
    const rules = np.spec.ingress as Y[];
    const portsOf = (r: Y): number[] => {
      assert.ok(Array.isArray(r.ports) && r.ports.length > 0, "every rule names its ports (a rule without ports admits all)");
      return (r.ports as Y[]).map((p) => portByName(p.port));
    };
    const metricsPort = config.metrics.listen!.port;
    for (const r of rules) {
      if (!portsOf(r).includes(metricsPort)) continue;
      const from = r.from as Y[] | undefined;
      assert.ok(Array.isArray(from) && from.length > 0, "the metrics port is never open to all");
      for (const peer of from) {
        assert.ok(peer.namespaceSelector?.matchLabels && Object.keys(peer.namespaceSelector.matchLabels).length > 0, "metrics peers are selected by namespace");
        assert.equal(peer.ipBlock, undefined, "no address ranges for metrics");
      }
    }
    assert.ok(
      rules.some((r) => r.from === undefined && portsOf(r).includes(config.listen.port)),
      "the RA-TLS port is open to every client",
    );
    assert.ok(
      rules.some((r) => r.from !== undefined && portsOf(r).includes(metricsPort)),
      "the monitoring namespace can scrape",
    );
  });

  it("the EPC requested holds the proxy and every stdio child configs/enclave.yaml allows, each an enclave of sgx.enclave_size", () => {
    const size = (parseToml(readFileSync(join(REPO, "enclave/attestable-mcp.manifest"), "utf8")) as Y).sgx?.enclave_size as string;
    const m = /^(\d+)([KMG])$/.exec(size);
    assert.ok(m, `sgx.enclave_size ${size}`);
    const enclave = Number(m[1]) * { K: 2 ** 10, M: 2 ** 20, G: GIB }[m[2] as "K"];
    const up = config.upstream as { kind: string; maxSessions: number; modernChildren?: number };
    assert.equal(up.kind, "stdio");
    const enclaves = 1 + up.maxSessions + (up.modernChildren ?? 0);
    const r = container().resources;
    for (const side of ["requests", "limits"]) {
      const epc = r[side]?.["sgx.intel.com/epc"];
      assert.ok(
        bytes(epc) >= enclaves * enclave,
        `${side} sgx.intel.com/epc ${epc} does not hold ${enclaves} enclaves of ${size} (the proxy, upstream.maxSessions ${up.maxSessions}, upstream.modernChildren ${up.modernChildren ?? 0})`,
      );
    }
  });
});
