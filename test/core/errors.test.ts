/**
 * The error catalogue: every error class of the package is an instance of the one base class
 * with a code from the union, every code in the list is used, and no message carries a code.
 * The compiled tree is read as the package ships it (classes and call sites in dist/proxy).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";
import {
  ALL_ERROR_CODES,
  AppraisalTimeout,
  AttestableMcpError,
  AttestationError,
  AuthKeysError,
  BridgeError,
  CborError,
  ClientPolicyError,
  CollateralError,
  ConfigError,
  ConnectorError,
  DerError,
  ERROR_CODES,
  EvidenceError,
  ExchangeFailure,
  InputError,
  PolicyError,
  QuoteFormatError,
  RaTlsError,
  WorkerError,
  type ErrorCode,
  type ErrorFamily,
} from "../../proxy/core/errors.js";
import * as index from "../../proxy/index.js";
import { AttestationError as ProviderAttestationError } from "../../proxy/attest/provider.js";
import { AttestationRejectedError } from "../../proxy/client/errors.js";
import { AttestationRejectedError as ConnectorRejected, ConnectorError as ConnectorConnectorError } from "../../proxy/client/connector.js";
import { BridgeError as StdioBridgeError } from "../../proxy/client/bridge/stdio.js";
import { ExchangeFailure as FreshnessExchangeFailure } from "../../proxy/client/freshness.js";
import type { ConnectionVerdict } from "../../proxy/client/verdict.js";
import { collateralKeyOf } from "../../proxy/collateral/pccs.js";
import { PolicyError as EvidencePolicyError } from "../../proxy/evidence/policy.js";
import { ClientPolicyError as ServerClientPolicyError } from "../../proxy/server/client-attestation.js";
import { WorkerError as ClusterWorkerError } from "../../proxy/server/cluster.js";
import { ConfigError as ServerConfigError } from "../../proxy/server/config.js";
import { DIST, vector } from "../support/vectors.js";

type ErrorClass = abstract new (...args: never[]) => Error;

/** One instance of every error class, with the family its codes belong to. `fixed`: the class sets the code itself. */
const CATALOGUE: { cls: ErrorClass; family: ErrorFamily | ErrorFamily[]; sample: Error; fixed?: true }[] = [
  { cls: QuoteFormatError, family: "quote", sample: new QuoteFormatError("QUOTE_TRUNCATED", "quote ends early", 48) },
  { cls: DerError, family: "der", sample: new DerError("DER_LENGTH", "length runs past the end", 2) },
  { cls: CollateralError, family: ["collateral", "der"], sample: new CollateralError("COLLATERAL_MISSING", "no TCB info") },
  { cls: InputError, family: "input", sample: new InputError("TIME_INVALID", "not a time") },
  { cls: CborError, family: "cbor", sample: new CborError("CBOR_TRAILING", "bytes after the item", 3) },
  { cls: RaTlsError, family: "ratls", sample: new RaTlsError("RATLS_NO_EVIDENCE", "no evidence extension") },
  { cls: AttestationError, family: "attestation", sample: new AttestationError("GRAMINE_UNAVAILABLE", "no /dev/attestation") },
  { cls: ConfigError, family: "config", sample: new ConfigError("listen", "c.yaml", "expected HOST:PORT"), fixed: true },
  { cls: ClientPolicyError, family: "config", sample: new ClientPolicyError("freshness", "c.yaml", "must be certificate"), fixed: true },
  { cls: PolicyError, family: "policy", sample: new PolicyError("measurements", "p.yaml", "required"), fixed: true },
  { cls: WorkerError, family: "worker", sample: new WorkerError("WORKER_EXITED", "worker 1 ended unexpectedly") },
  { cls: BridgeError, family: "bridge", sample: new BridgeError("REMOTE_INVALID", "--remote must be https:") },
  { cls: ConnectorError, family: "connector", sample: new ConnectorError("CONNECT_TIMEOUT", "took over 10 ms") },
  { cls: ExchangeFailure, family: "connector", sample: new ExchangeFailure("the server closed the connection"), fixed: true },
  { cls: AppraisalTimeout, family: "appraisal", sample: new AppraisalTimeout(20), fixed: true },
  { cls: AuthKeysError, family: "authKeys", sample: new AuthKeysError("AUTH_JWKS_UNAVAILABLE", "JWKS https://as.example/jwks: connection refused") },
  {
    cls: AttestationRejectedError,
    family: "rejected",
    sample: new AttestationRejectedError({ failed: { check: "policy.measurement", reason: "no entry matches" } } as unknown as ConnectionVerdict),
    fixed: true,
  },
];

/** The families' bases: not constructed with a code of their own, but part of the catalogue. */
const BASES: ErrorClass[] = [AttestableMcpError, EvidenceError];

const CODE_WORD = new RegExp(`\\b(${[...ALL_ERROR_CODES].sort((a, b) => b.length - a.length).join("|")})\\b`);

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? jsFiles(join(dir, d.name)) : d.name.endsWith(".js") ? [join(dir, d.name)] : []));
}

const PROXY = join(DIST, "proxy");
const SOURCES = jsFiles(PROXY).map((file) => ({ file: relative(PROXY, file), text: readFileSync(file, "utf8") }));
const CATALOGUE_FILE = join("core", "errors.js");

/** Every string and template piece of a compiled file (comments are not strings). */
function strings(file: string, text: string): string[] {
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n) || ts.isTemplateHead(n) || ts.isTemplateMiddle(n) || ts.isTemplateTail(n)) out.push(n.text);
    ts.forEachChild(n, visit);
  };
  visit(ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS));
  return out;
}

describe("the error catalogue", () => {
  it("the codes are unique, and each family's list is its own", () => {
    assert.equal(new Set(ALL_ERROR_CODES).size, ALL_ERROR_CODES.length, "a code listed twice");
    for (const code of ALL_ERROR_CODES) assert.match(code, /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/);
  });

  it("every error class is an instance of the base with a code of its family, and names itself", () => {
    for (const { cls, family, sample } of CATALOGUE) {
      const families = Array.isArray(family) ? family : [family];
      assert.ok(sample instanceof cls, cls.name);
      assert.ok(sample instanceof AttestableMcpError, `${cls.name} extends the base`);
      assert.ok(sample instanceof Error);
      assert.equal(sample.name, cls.name);
      const code = (sample as AttestableMcpError).code;
      assert.ok(
        families.some((f) => (ERROR_CODES[f] as readonly string[]).includes(code)),
        `${cls.name}: ${code} is a ${families.join("/")} code`,
      );
    }
    // Evidence errors stay one family; the others are not evidence errors.
    for (const cls of [QuoteFormatError, DerError, CollateralError, InputError, CborError, RaTlsError]) assert.ok(cls.prototype instanceof EvidenceError, cls.name);
    for (const cls of [AttestationError, ConfigError, PolicyError, WorkerError, BridgeError, ConnectorError, AttestationRejectedError, AppraisalTimeout, AuthKeysError]) {
      assert.ok(!(cls.prototype instanceof EvidenceError), `${cls.name} is not an EvidenceError`);
    }
    assert.ok(!(PolicyError.prototype instanceof ConfigError), "a policy error is not a config error");
    assert.ok(ClientPolicyError.prototype instanceof ConfigError, "the client policy is a config key");
  });

  it("a class moved into the catalogue is still exported where it was", () => {
    assert.equal(ProviderAttestationError, AttestationError);
    assert.equal(ServerConfigError, ConfigError);
    assert.equal(ServerClientPolicyError, ClientPolicyError);
    assert.equal(EvidencePolicyError, PolicyError);
    assert.equal(ClusterWorkerError, WorkerError);
    assert.equal(StdioBridgeError, BridgeError);
    assert.equal(ConnectorConnectorError, ConnectorError);
    assert.equal(ConnectorRejected, AttestationRejectedError);
    assert.equal(FreshnessExchangeFailure, ExchangeFailure);
    const fromIndex: Record<string, unknown> = {
      AttestableMcpError,
      EvidenceError,
      QuoteFormatError,
      DerError,
      CollateralError,
      InputError,
      AttestationError,
      PolicyError,
      AttestationRejectedError,
      ConnectorError,
    };
    for (const [name, cls] of Object.entries(fromIndex)) assert.equal((index as Record<string, unknown>)[name], cls, `the package root exports ${name}`);
  });

  it("the catalogue holds every error class in the compiled package, and only the base extends Error", () => {
    const parents = new Map<string, string>();
    for (const { text } of SOURCES) for (const m of text.matchAll(/\bclass\s+(\w+)\s+extends\s+([\w.]+)/g)) parents.set(m[1]!, m[2]!);
    const isError = (name: string, seen = 0): boolean => name === "Error" || (seen < 20 && parents.has(name) && isError(parents.get(name)!, seen + 1));
    const errorClasses = [...parents.keys()].filter((n) => isError(n)).sort();
    const known = new Set([...CATALOGUE.map((c) => c.cls.name), ...BASES.map((c) => c.name)]);
    assert.deepEqual(
      errorClasses.filter((n) => !known.has(n)),
      [],
      "error classes missing from the catalogue",
    );
    assert.deepEqual(
      errorClasses.filter((n) => parents.get(n) === "Error"),
      ["AttestableMcpError"],
    );
  });

  it("every code in the list is used by a class or a call site, and every call site uses a listed code", () => {
    const used = new Set<string>(CATALOGUE.filter((c) => c.fixed).map((c) => (c.sample as AttestableMcpError).code));
    for (const { file, text } of SOURCES) {
      if (file === CATALOGUE_FILE) continue;
      for (const m of text.matchAll(/"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"/g)) used.add(m[1]!);
      for (const m of text.matchAll(/\bnew\s+(\w+)\(\s*"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"/g)) {
        if (CATALOGUE.some((c) => c.cls.name === m[1])) assert.ok((ALL_ERROR_CODES as readonly string[]).includes(m[2]!), `${file}: new ${m[1]}("${m[2]}") is not in the catalogue`);
      }
    }
    assert.deepEqual(
      ALL_ERROR_CODES.filter((c) => !used.has(c)),
      [],
      "codes no class or call site uses",
    );
  });

  it("no message carries a code: no string in the package embeds one in other text", () => {
    const offenders: string[] = [];
    for (const { file, text } of SOURCES) {
      for (const s of strings(file, text)) {
        if (CODE_WORD.test(s) && !(ALL_ERROR_CODES as readonly string[]).includes(s)) offenders.push(`${file}: ${JSON.stringify(s.slice(0, 120))}`);
      }
    }
    assert.deepEqual(offenders, []);
    for (const { cls, sample } of CATALOGUE) assert.ok(!CODE_WORD.test(sample.message), `${cls.name}: ${sample.message}`);
  });

  it("a failure carried up from the evidence core keeps its code as `code`, not in its text", () => {
    assert.throws(
      () => collateralKeyOf(vector("sgx/fortanix/quote-cert-type-3.bin")),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.equal(e.code, "PCK_CHAIN_MISSING");
        assert.match(e.message, /^certification data type 3 carries an encrypted or plain PPID/);
        assert.ok(!CODE_WORD.test(e.message), e.message);
        return true;
      },
    );
  });

  it("a family's code narrows: a switch over it is exhaustive (checked when this file compiles)", () => {
    // Without narrowing to exactly the two worker codes, this function would not compile.
    const exitOf = (e: WorkerError): number => {
      switch (e.code) {
        case "WORKER_START_FAILED":
          return 2;
        case "WORKER_EXITED":
          return 1;
      }
    };
    assert.equal(exitOf(new WorkerError("WORKER_EXITED", "ended")), 1);
    const any: AttestableMcpError = new PolicyError("k", "s", "r");
    const code: ErrorCode = any.code;
    assert.equal(code, "POLICY_INVALID");
  });
});
