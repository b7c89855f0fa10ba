/**
 * The client's policy: which roots, measurements, debug setting, TCB statuses, advisories and
 * collateral age it accepts, and how it asks for freshness. A policy file is validated once into
 * a typed Policy (unknown keys and bad values are errors naming the key); `applyPolicy` then adds
 * `policy.*` checks to a verdict. Fail closed: no measurement list means an error, not "any";
 * "any" is accepted only where the file writes it.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { PolicyError } from "../core/errors.js";
import { FRESHNESS_MODES, type FreshnessMode } from "../core/protocol.js";
import { expandHome, valueParsers } from "../core/schema.js";
import { trustAnchors, type TrustAnchor } from "./dcap/roots.js";
import { debugOutcome, measurementOutcome, measurementRules, type MeasurementRule } from "./measurement.js";
import { CheckList, outcome, type Check, type TcbStatus, type Verdict } from "./verdict.js";

export { PolicyError };
export type { MeasurementRule, SgxMeasurementRule, TdxMeasurementRule } from "./measurement.js";

const { duration, str, oneOf, bool, serviceUrl } = valueParsers((key, source, reason) => {
  throw new PolicyError(key, source, reason);
});

/** The freshness modes are part of the wire protocol: one union, in core/protocol.ts. */
export type Freshness = FreshnessMode;

export interface Policy {
  /** The policy file (or "(inline)"). */
  source: string;
  /** Intel's root is trusted only when the list says `intel`. */
  trustIntel: boolean;
  /** Other roots (PEM text, e.g. the dev root), with the path each came from. */
  trustRoots: { path: string; pem: string }[];
  /**
   * Every root the verifier may chain to, parsed when the policy loaded: Intel's first (always
   * known to the verifier; policy.trust-root refuses it unless listed), then those of trustRoots.
   */
  anchors: readonly TrustAnchor[];
  measurements: "any" | MeasurementRule[];
  allowDebug: boolean;
  tcb: {
    require: boolean;
    acceptStatuses: TcbStatus[];
    acceptAdvisories: "any" | string[];
    maxCollateralAgeMs: number;
    acceptStaleCollateral: boolean;
  };
  collateral: { pccsUrl: string | null; path: string | null; cacheDir: string | null };
  freshness: Freshness;
}

export const INTEL_PCS_URL = "https://api.trustedservices.intel.com/";
export const DEFAULT_CACHE_DIR = "~/.cache/attestable-mcp";

const STATUSES = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"] as const;
const TOP = ["trustRoots", "measurements", "allowDebug", "tcb", "collateral", "freshness"];
const TCB = ["require", "acceptStatuses", "acceptAdvisories", "maxCollateralAge", "acceptStaleCollateral"];
const COLLATERAL = ["pccsUrl", "path", "cacheDir"];

function mapping(key: string, v: unknown, source: string, known: string[]): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new PolicyError(key || "(top level)", source, "expected a mapping");
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) throw new PolicyError(key ? `${key}.${k}` : k, source, `unknown key (known: ${known.join(", ")})`);
  }
  return v as Record<string, unknown>;
}

function list(key: string, v: unknown, source: string): unknown[] {
  if (!Array.isArray(v)) throw new PolicyError(key, source, `expected a list, got ${JSON.stringify(v)}`);
  return v;
}

/** Kept as written: the collateral client normalises it. */
function pccsUrl(v: unknown, source: string): string {
  serviceUrl("collateral.pccsUrl", v, source);
  return v as string;
}

/**
 * Validate a parsed policy document. `readRoot` loads a trust-root file (I/O stays with the
 * caller); relative paths are relative to `baseDir`, the policy file's directory.
 */
export async function buildPolicy(doc: unknown, source: string, baseDir: string, readRoot: (path: string) => Promise<string>): Promise<Policy> {
  const top = mapping("", doc ?? {}, source, TOP);
  const roots = list("trustRoots", top.trustRoots ?? ["intel"], source);
  if (roots.length === 0) throw new PolicyError("trustRoots", source, 'an empty list trusts nothing: write "intel" and/or paths to PEM roots');
  let trustIntel = false;
  const trustRoots: Policy["trustRoots"] = [];
  const listed: TrustAnchor[] = [];
  for (const [i, r] of roots.entries()) {
    const entry = str(`trustRoots[${i}]`, r, source);
    if (entry === "intel") {
      trustIntel = true;
      continue;
    }
    const path = resolve(baseDir, expandHome(entry));
    let pem: string;
    try {
      pem = await readRoot(path);
    } catch (e) {
      throw new PolicyError(`trustRoots[${i}]`, source, `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    let anchors: TrustAnchor[];
    try {
      anchors = trustAnchors([pem]);
    } catch (e) {
      throw new PolicyError(`trustRoots[${i}]`, source, `${path}: ${(e as Error).message}`);
    }
    // Intel's root written as a file is still Intel's root.
    if (anchors.length === 1 || anchors.slice(1).every((a) => a.intel)) trustIntel = true;
    else {
      trustRoots.push({ path, pem });
      listed.push(...anchors.slice(1));
    }
  }

  const tcb = mapping("tcb", top.tcb ?? {}, source, TCB);
  const statuses = list("tcb.acceptStatuses", tcb.acceptStatuses ?? ["UpToDate"], source).map((s, i) => {
    if (s === "Revoked") throw new PolicyError(`tcb.acceptStatuses[${i}]`, source, "a Revoked TCB is never acceptable");
    return oneOf(`tcb.acceptStatuses[${i}]`, s, source, STATUSES);
  });
  if (statuses.length === 0) throw new PolicyError("tcb.acceptStatuses", source, "an empty list accepts no TCB status");
  const advisories =
    tcb.acceptAdvisories === "any"
      ? "any"
      : list("tcb.acceptAdvisories", tcb.acceptAdvisories ?? [], source).map((a, i) => {
          if (typeof a !== "string" || !/^INTEL-SA-\d{5}$/.test(a))
            throw new PolicyError(`tcb.acceptAdvisories[${i}]`, source, `expected an advisory ID such as INTEL-SA-00615, got ${JSON.stringify(a)}`);
          return a;
        });

  const col = mapping("collateral", top.collateral ?? {}, source, COLLATERAL);
  if (col.pccsUrl !== undefined && col.path !== undefined) throw new PolicyError("collateral.path", source, "give collateral.pccsUrl or collateral.path, not both");
  const cacheDir = col.cacheDir === undefined ? DEFAULT_CACHE_DIR : col.cacheDir === null ? null : str("collateral.cacheDir", col.cacheDir, source);
  const collateral: Policy["collateral"] = {
    pccsUrl: col.path !== undefined ? null : col.pccsUrl === undefined ? INTEL_PCS_URL : pccsUrl(col.pccsUrl, source),
    path: col.path === undefined ? null : resolve(baseDir, expandHome(str("collateral.path", col.path, source))),
    cacheDir: cacheDir === null ? null : resolve(baseDir, expandHome(cacheDir)),
  };

  const rules = measurementRules(top.measurements, source);
  return {
    source,
    trustIntel,
    trustRoots,
    anchors: trustAnchors(listed),
    measurements: rules,
    allowDebug: top.allowDebug === undefined ? false : bool("allowDebug", top.allowDebug, source),
    tcb: {
      require: tcb.require === undefined ? true : bool("tcb.require", tcb.require, source),
      acceptStatuses: statuses,
      acceptAdvisories: advisories,
      maxCollateralAgeMs: duration("tcb.maxCollateralAge", tcb.maxCollateralAge ?? "30d", source, 100 * 365 * 86_400_000),
      acceptStaleCollateral: tcb.acceptStaleCollateral === undefined ? false : bool("tcb.acceptStaleCollateral", tcb.acceptStaleCollateral, source),
    },
    collateral,
    freshness: top.freshness === undefined ? "exporter" : oneOf("freshness", top.freshness, source, FRESHNESS_MODES),
  };
}

/** Read and validate a policy file. */
export async function loadPolicy(file: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PolicyError("--policy", file, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new PolicyError("(yaml)", file, doc.errors[0]!.message);
  return buildPolicy(doc.toJS(), file, dirname(resolve(file)), (p) => readFile(p, "utf8"));
}

/** The listed trust roots as PEM texts, for clients that take roots as text (Intel's is always known). */
export function policyTrustRoots(p: Policy): string[] {
  return p.trustRoots.map((r) => r.pem);
}

/** The policy checks for a verdict, in a fixed order. */
export function policyChecks(v: Verdict, p: Policy): Check[] {
  const c = new CheckList();
  // The verifier always knows Intel's root; a policy that does not list it must refuse it.
  if (v.quote === null || v.checks.some((k) => k.check === "pck.chain" && !k.ok)) c.fail("policy.trust-root", "not evaluated: the PCK chain is not trusted");
  else if (!v.dev) c.record("policy.trust-root", p.trustIntel, p.trustIntel ? "Intel SGX Root CA (listed as intel)" : "the chain ends at Intel's root, which trustRoots does not list");
  else c.pass("policy.trust-root", `a root listed in trustRoots (${p.trustRoots.map((r) => r.path).join(", ")}): development evidence`);

  const q = v.quote;
  if (q === null) c.fail("policy.measurement", "not evaluated: no quote");
  else {
    const m = measurementOutcome(q, p.measurements);
    c.record("policy.measurement", m.ok, m.detail);
  }

  if (q === null) c.fail("policy.debug", "not evaluated: no quote");
  else {
    const d = debugOutcome(q, p.allowDebug);
    c.record("policy.debug", d.ok, d.detail);
  }

  if (!p.tcb.require) {
    c.pass("policy.tcb-status", "not evaluated (tcb.require: false)");
  } else if (v.tcb === null) {
    c.fail("policy.tcb-status", "not evaluated: the policy requires a TCB status and there is none (no collateral, or it did not verify)");
  } else {
    const t = v.tcb;
    const statusOk = p.tcb.acceptStatuses.includes(t.status);
    c.record("policy.tcb-status", statusOk, statusOk ? `${t.status} is accepted` : `${t.status} is not in acceptStatuses [${p.tcb.acceptStatuses.join(", ")}]`);
    const extra = p.tcb.acceptAdvisories === "any" ? [] : t.advisoryIds.filter((a) => !(p.tcb.acceptAdvisories as string[]).includes(a));
    if (t.status === "UpToDate" || t.advisoryIds.length === 0) c.pass("policy.advisories", "no advisories");
    else c.record("policy.advisories", extra.length === 0, extra.length === 0 ? `${t.advisoryIds.join(", ")} accepted` : `${extra.join(", ")} not in acceptAdvisories`);
    const age = Date.parse(v.at) - Date.parse(t.collateralIssued);
    const days = (ms: number): string => `${(ms / 86_400_000).toFixed(1)} days`;
    c.record("policy.collateral-age", age <= p.tcb.maxCollateralAgeMs, `collateral issued ${t.collateralIssued}, ${days(age)} old; maxCollateralAge ${days(p.tcb.maxCollateralAgeMs)}`);
  }
  return c.checks;
}

/** The verdict with the policy's checks appended; `ok` and `failed` account for them. */
export function applyPolicy<V extends Verdict>(v: V, p: Policy): V & { policy: string } {
  const checks = [...v.checks, ...policyChecks(v, p)];
  const { ok, failed } = outcome(checks, v.quote !== null);
  return { ...v, checks, ok, failed, policy: p.source };
}
