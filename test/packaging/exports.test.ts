/**
 * The subpath entries as a consumer reaches them: by the package's name, through package.json's
 * `exports`, from the compiled tree these tests run from. Each entry is a thin file of re-exports,
 * exports the values it documents (and no others) at run time, resolves every documented name for
 * a consumer's TypeScript through the `types` condition, and loads nothing of the parts it does not
 * need: a verifier embedded elsewhere pulls in no server, client or CLI code, and the dev provider
 * is loaded by no entry but `/dev`. The root entry keeps every name it had before the subpaths.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { after, before, describe, it } from "node:test";
import { DIST, REPO } from "../support/vectors.js";
import { tempDir } from "../support/wait.js";

const PKG = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { name: string; exports: Record<string, { types: string; default: string }> };

/** A list of names, whitespace-separated. */
const words = (s: string): string[] => s.trim().split(/\s+/);

interface Entry {
  /** Value exports, seen at run time. */
  values: string[];
  /** Type-only exports, which a consumer's compiler must resolve. */
  types: string[];
  /** Folders under proxy/ whose modules importing the entry must not load. */
  never: string[];
}

const ENTRIES: Record<string, Entry> = {
  verify: {
    values: words(`
      parseQuote isDebug isTdDebug MAX_QUOTE_BYTES verifyQuote quoteFields verifyRaTlsCertificate readRaTls readRaTlsCertificate checkBinding loadCollateral
      prepareCollateral parseTcbInfo parseQeIdentity INTEL_SGX_ROOT_CA_PEM loadPolicy buildPolicy applyPolicy appraiseCertificate appraiseParsed
      collateralSource AttestableMcpError EvidenceError QuoteFormatError DerError CollateralError InputError CborError RaTlsError PolicyError
    `),
    types: words(`
      Quote SgxQuote TdxQuote SgxReportBody TdReportBody QuoteHeader CertificationData VerifyOptions Verdict Check CheckName QuoteFields SgxQuoteFields
      TdxQuoteFields PlatformFields TcbFields TcbStatus RaTlsVerdict RaTlsEvidence ParsedRaTls BindingCheck RaTlsExtensionKind Collateral CollateralParts
      TcbInfo QeIdentity Policy MeasurementRule Freshness Appraisal AppraisedQuote CollateralInfo CollateralSource ErrorCode EvidenceCode QuoteFormatCode
      DerCode CollateralCode InputCode CborCode RaTlsCode PolicyCode
    `),
    never: ["server/", "client/", "cli/", "attest/"],
  },
  client: {
    values: ["attestedFetch", "createAttestedAgent", "verifyRemote", "rejectionOf", "AttestationRejectedError", "ConnectorError"],
    types: ["ConnectorOptions", "AttestedFetch", "ConnectionVerdict", "FreshnessResult", "ConnectorCode"],
    never: ["server/", "cli/", "attest/"],
  },
  attest: {
    values: words(`
      REPORT_DATA_BYTES GramineProvider GRAMINE_ATTESTATION_DIR TdxProvider TSM_REPORT_DIR Identity mintIdentity buildClaims buildRaTlsCertificate taggedReportData legacyReportData
      spkiOf AttestationError
    `),
    types: ["AttestationProvider", "TdxProviderOptions", "MintedIdentity", "IdentityOptions", "KeyType", "RaTlsCertificateSpec", "AttestationCode"],
    never: ["server/", "client/", "cli/", "collateral/", "attest/dev/"],
  },
  server: {
    values: ["startServer", "loadConfig", "ConfigError", "ClientPolicyError"],
    types: ["RunningServer", "Config", "ConfigInputs", "ConfigCode"],
    never: ["client/", "cli/", "attest/dev/"],
  },
  dev: {
    values: ["DevProvider", "devMrenclave", "devMrtd", "openDevPki", "DEFAULT_DEV_DIR", "devCollateral", "writeCollateralDirectory"],
    types: ["DevProviderOptions", "DevPki", "DevCollateralOptions"],
    never: ["server/", "client/", "cli/"],
  },
};

/** What the root entry exported before the subpaths existed: a consumer of it keeps every name. */
const ROOT_BEFORE = words(`
  parseQuote isDebug isTdDebug MAX_QUOTE_BYTES verifyQuote quoteFields loadCollateral prepareCollateral parseTcbInfo parseQeIdentity
  INTEL_SGX_ROOT_CA_PEM EvidenceError QuoteFormatError DerError CollateralError InputError verifyRaTlsCertificate readRaTls checkBinding buildClaims
  buildRaTlsCertificate taggedReportData legacyReportData AttestationError GramineProvider DevProvider devMrenclave devCollateral
  writeCollateralDirectory Identity mintIdentity loadPolicy buildPolicy applyPolicy PolicyError appraiseCertificate collateralSource attestedFetch
  createAttestedAgent verifyRemote rejectionOf AttestationRejectedError ConnectorError
`);

const ROOT_TYPES_BEFORE = words(`
  Quote SgxQuote TdxQuote SgxReportBody TdReportBody QuoteHeader CertificationData VerifyOptions Verdict Check CheckName QuoteFields PlatformFields
  TcbFields TcbStatus Collateral CollateralParts TcbInfo QeIdentity RaTlsVerdict AttestationProvider MintedIdentity IdentityOptions KeyType Policy
  MeasurementRule Freshness Appraisal CollateralInfo CollateralSource ConnectorOptions ConnectionVerdict FreshnessResult AttestedFetch
`);

/** Records every module the child loads, one URL a line, from the loader thread (it sees every import). */
const HOOKS = [
  `import { appendFileSync } from "node:fs";`,
  `let out;`,
  `export function initialize(data) { out = data.out; }`,
  `export async function load(url, context, next) { appendFileSync(out, url + "\\n"); return next(url, context); }`,
  ``,
].join("\n");

const sorted = (xs: Iterable<string>) => [...xs].sort();

describe("the subpath entries, imported by the package's name", () => {
  let tmp = "";
  const loaded = new Map<string, { names: string[]; modules: string[] }>();
  /** What a consumer's compiler says about importing each entry's documented names, by entry. */
  const typeErrors = new Map<string, string[]>();

  before(() => {
    tmp = tempDir("amcp-exports-");
    // An installed copy whose dist/ is the build under test: package.json (and so its `exports`)
    // as it is in the repository, resolved the way a consumer's import resolves it.
    const pkg = join(tmp, "node_modules", PKG.name);
    mkdirSync(pkg, { recursive: true });
    cpSync(join(REPO, "package.json"), join(pkg, "package.json"));
    symlinkSync(DIST, join(pkg, "dist"), "dir");
    writeFileSync(join(tmp, "hooks.mjs"), HOOKS);
    writeFileSync(join(tmp, "probe.mjs"), `const m = await import(process.argv[2]);\nconsole.log(JSON.stringify(Object.keys(m)));\n`);
    // The loader reports real paths: the symlink above, and any in DIST's own path, resolved.
    const proxyUrl = pathToFileURL(join(realpathSync(DIST), "proxy")).href + "/";
    for (const sub of ["", ...Object.keys(ENTRIES)]) {
      const specifier = sub ? `${PKG.name}/${sub}` : PKG.name;
      const out = join(tmp, `loaded-${sub || "root"}.txt`);
      writeFileSync(out, "");
      const register = `import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url, { data: { out: ${JSON.stringify(out)} } });\n`;
      writeFileSync(join(tmp, `register-${sub || "root"}.mjs`), register);
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      delete env.NODE_TEST_CONTEXT;
      const r = spawnSync(process.execPath, ["--import", `./register-${sub || "root"}.mjs`, "probe.mjs", specifier], { cwd: tmp, env, encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 0, `importing ${specifier} exited ${r.status}\n${r.stderr}`);
      const modules = readFileSync(out, "utf8")
        .split("\n")
        .filter((u) => u.startsWith(proxyUrl))
        .map((u) => u.slice(proxyUrl.length));
      loaded.set(sub || ".", { names: JSON.parse(r.stdout) as string[], modules });
    }

    // A consumer's TypeScript, resolving by the package name with Node's rules: a name missing from
    // an entry's declarations, or a declaration file the `types` condition does not lead to, is an error.
    writeFileSync(join(tmp, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }) + "\n");
    const consumers = new Map<string, string>();
    const imports = (specifier: string, values: string[], types: string[]) =>
      `import { ${values.join(", ")} } from ${JSON.stringify(specifier)};\nimport type { ${types.join(", ")} } from ${JSON.stringify(specifier)};\n`;
    for (const [sub, entry] of Object.entries(ENTRIES)) consumers.set(sub, imports(`${PKG.name}/${sub}`, entry.values, entry.types));
    consumers.set(".", imports(PKG.name, ROOT_BEFORE, ROOT_TYPES_BEFORE));
    const fileOf = (sub: string) => join(tmp, `consumer-${sub === "." ? "root" : sub}.ts`);
    for (const [sub, text] of consumers) writeFileSync(fileOf(sub), text);
    const program = ts.createProgram([...consumers.keys()].map(fileOf), {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
      typeRoots: [join(REPO, "node_modules/@types")],
    });
    for (const sub of consumers.keys()) {
      const file = program.getSourceFile(fileOf(sub));
      assert.ok(file, `the compiler did not read ${fileOf(sub)}`);
      const diagnostics = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
      typeErrors.set(
        sub,
        diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")),
      );
    }
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("package.json names each entry with its declarations, and every file in proxy/exports/ is one", () => {
    const files = readdirSync(join(REPO, "proxy/exports")).filter((f) => f.endsWith(".ts"));
    assert.deepEqual(sorted(files.map((f) => f.replace(/\.ts$/, ""))), sorted(Object.keys(ENTRIES)), "proxy/exports/ and the entries tested here");
    assert.deepEqual(sorted(Object.keys(PKG.exports)), sorted([".", ...Object.keys(ENTRIES).map((s) => `./${s}`)]));
    for (const sub of Object.keys(ENTRIES)) {
      assert.deepEqual(PKG.exports[`./${sub}`], { types: `./dist/proxy/exports/${sub}.d.ts`, default: `./dist/proxy/exports/${sub}.js` }, sub);
    }
  });

  it("an entry file is a doc comment and `export … from` lines, nothing else", () => {
    for (const sub of Object.keys(ENTRIES)) {
      const text = readFileSync(join(REPO, "proxy/exports", `${sub}.ts`), "utf8");
      assert.match(text, /^\/\*\*\n( \*.*\n)+ \*\/\n/, `${sub}.ts opens with a doc comment`);
      const body = text.replace(/^\/\*\*[\s\S]*?\*\/\n/, "");
      for (const line of body.split("\n").filter((l) => l.trim() !== "")) {
        assert.match(line, /^export (type )?\{ [\w, ]+ \} from "\.\.\/[\w/.-]+\.js";$/, `${sub}.ts: ${line}`);
      }
    }
  });

  for (const [sub, entry] of Object.entries(ENTRIES)) {
    describe(`${PKG.name}/${sub}`, () => {
      it("exports the values it documents, and no others", () => {
        assert.deepEqual(sorted(loaded.get(sub)!.names), sorted(entry.values));
      });

      it("resolves every documented value and type for a consumer's TypeScript", () => {
        assert.deepEqual(typeErrors.get(sub), []);
      });

      it(`loads nothing under ${entry.never.join(", ")}`, () => {
        const modules = loaded.get(sub)!.modules;
        assert.ok(modules.includes(`exports/${sub}.js`), `the probe did not load the entry itself: ${modules.join(", ")}`);
        const stray = modules.filter((m) => entry.never.some((n) => m.startsWith(n)));
        assert.deepEqual(stray, [], `importing ${PKG.name}/${sub} loaded them`);
      });
    });
  }

  it("the root entry keeps every name it had, and carries every entry but /server's", () => {
    assert.deepEqual(typeErrors.get("."), [], "a consumer of the root entry");
    const root = new Set(loaded.get(".")!.names);
    for (const name of ROOT_BEFORE) assert.ok(root.has(name), `${name} gone from the root entry`);
    for (const [sub, entry] of Object.entries(ENTRIES)) {
      if (sub === "server") continue;
      for (const name of entry.values) assert.ok(root.has(name), `${name} (/${sub}) not in the root entry`);
    }
  });
});
