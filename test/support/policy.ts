/**
 * Policies built from objects, as a file would give them ("test.yaml" in "/policies"), for the
 * policy and measurement tests: the policy, a refusal that must name its key, and a verdict's check.
 */
import assert from "node:assert/strict";
import { buildPolicy, PolicyError, type Policy } from "../../proxy/evidence/policy.js";
import type { Verdict } from "../../proxy/evidence/verdict.js";

/** A trust-root reader for policies that name no root file. */
const noRoots = (p: string): Promise<string> => Promise.reject(Object.assign(new Error("no file"), { code: "ENOENT", path: p }));

/** A policy from an object, as a file would give it. */
export function policy(doc: unknown, readRoot = noRoots): Promise<Policy> {
  return buildPolicy(doc, "test.yaml", "/policies", readRoot);
}

/** The object is refused as a policy: POLICY_INVALID at `key`, from test.yaml, the message matching `reason` and naming the key. */
export async function rejects(doc: unknown, key: string, reason: RegExp, readRoot = noRoots): Promise<void> {
  await assert.rejects(policy(doc, readRoot), (e: unknown) => {
    assert.ok(e instanceof PolicyError, `a PolicyError, got ${String(e)}`);
    assert.equal(e.code, "POLICY_INVALID");
    assert.equal(e.key, key);
    assert.equal(e.source, "test.yaml");
    assert.match(e.message, reason);
    assert.ok(e.message.includes(key), "the message names the key");
    return true;
  });
}

export const checkOf = (v: Verdict, name: string) => v.checks.find((c) => c.check === name);
