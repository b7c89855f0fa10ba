/**
 * The layout as a rule (DESIGN.md §3): data flows downward and no folder imports from one above it.
 * The graph is read from the compiled proxy/ of the build these tests run from, so it holds the
 * imports that run (type-only imports are erased) including the lazy `import("./…")` ones. Each
 * failure names the offending edge as source files, e.g. `evidence/policy.ts → server/config.ts`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";
import { DIST, REPO } from "./support/vectors.js";

const ROOT = join(DIST, "proxy");
const MAX_LINES = 400;

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** `evidence/policy.js` → `evidence/policy.ts`: edges are named by the file a person edits. */
const source = (m: string) => m.replace(/\.js$/, ".ts");

interface Edge {
  from: string;
  to: string;
  specifier: string;
}

/** Every import of a module: `import … from`, `import "…"`, `export … from` and `import("…")`. */
function specifiers(file: string): (string | null)[] {
  const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const found: (string | null)[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      found.push(n.moduleSpecifier.text);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      // A computed specifier would be an edge the graph cannot see: null, refused below.
      const arg = n.arguments[0];
      found.push(arg && ts.isStringLiteralLike(arg) ? arg.text : null);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

/** Modules relative to proxy/ (`server/config.js`), their project edges, and what could not be placed. */
function graph(): { modules: string[]; edges: Edge[]; unplaced: string[] } {
  const modules = walk(ROOT)
    .filter((f) => f.endsWith(".js"))
    .map((f) => relative(ROOT, f).split(sep).join("/"))
    .sort();
  const edges: Edge[] = [];
  const unplaced: string[] = [];
  for (const from of modules) {
    for (const specifier of specifiers(join(ROOT, from))) {
      if (specifier === null) {
        unplaced.push(`${source(from)} imports a computed specifier`);
        continue;
      }
      if (!specifier.startsWith(".")) continue;
      const target = resolve(dirname(join(ROOT, from)), specifier);
      const to = relative(ROOT, target).split(sep).join("/");
      if (to.startsWith("..")) unplaced.push(`${source(from)} imports ${specifier}, outside proxy/`);
      else if (!existsSync(target)) unplaced.push(`${source(from)} imports ${specifier}, which is not in the build`);
      else edges.push({ from, to, specifier });
    }
  }
  return { modules, edges, unplaced };
}

const { modules, edges, unplaced } = graph();

const under = (m: string, ...folders: string[]) => folders.some((f) => (f.endsWith("/") ? m.startsWith(f) : m === f));

/** `evidence/policy.ts:12 → server/config.ts`, the line being where the source names the specifier. */
function named(e: Edge): string {
  const file = join(REPO, "proxy", source(e.from));
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
  const line = lines.findIndex((l) => l.includes(JSON.stringify(e.specifier))) + 1;
  return `${source(e.from)}${line > 0 ? `:${line}` : ""} → ${source(e.to)}`;
}

/** A layering rule: the edges it forbids. */
const RULES: [rule: string, forbidden: (e: Edge) => boolean][] = [
  ["core/ imports nothing of the project", (e) => under(e.from, "core/") && !under(e.to, "core/")],
  ["evidence/ imports only evidence/ and core/", (e) => under(e.from, "evidence/") && !under(e.to, "evidence/", "core/")],
  ["collateral/ imports only core/, evidence/ and collateral/", (e) => under(e.from, "collateral/") && !under(e.to, "core/", "evidence/", "collateral/")],
  ["attest/ imports nothing of server/, client/, cli/ or collateral/", (e) => under(e.from, "attest/") && under(e.to, "server/", "client/", "cli/", "collateral/")],
  ["server/ and client/ do not import each other", (e) => (under(e.from, "server/") && under(e.to, "client/")) || (under(e.from, "client/") && under(e.to, "server/"))],
  ["only cli/, exports/ and index.ts import cli/", (e) => under(e.to, "cli/") && !under(e.from, "cli/", "exports/", "index.js")],
  ["only attest/dev/, cli/ and the /dev entry import attest/dev/", (e) => under(e.to, "attest/dev/") && !under(e.from, "attest/dev/", "cli/", "exports/dev.js")],
  ["the entries (exports/, index.ts) are imported by nothing but the root entry", (e) => under(e.to, "exports/", "index.js") && !under(e.from, "index.js")],
];

/** The cycles of the graph (Tarjan's strongly connected components), each as the edges that close it. */
function cycles(): string[] {
  const out = new Map<string, Edge[]>();
  for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strong = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const { to } of out.get(v) ?? []) {
      if (!index.has(to)) {
        strong(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, index.get(to)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      components.push(c);
    }
  };
  for (const m of modules) if (!index.has(m)) strong(m);

  // The shortest cycle through each module of a knot, so that two cycles sharing modules are both named.
  const found = new Set<string>();
  for (const c of components) {
    const inside = new Set(c);
    if (c.length === 1 && !(out.get(c[0]!) ?? []).some((e) => e.to === c[0])) continue;
    for (const start of c.sort()) {
      const via = new Map<string, Edge>();
      const queue = [start];
      let closing: Edge | undefined;
      while (queue.length > 0 && !closing) {
        const v = queue.shift()!;
        for (const e of out.get(v) ?? []) {
          if (e.to === start) {
            closing = e;
            break;
          }
          if (inside.has(e.to) && !via.has(e.to)) {
            via.set(e.to, e);
            queue.push(e.to);
          }
        }
      }
      const path: Edge[] = [closing!];
      for (let v = closing!.from; v !== start; v = via.get(v)!.from) path.unshift(via.get(v)!);
      // Named from its first module in sort order, so the same cycle found from each of its modules is one.
      const first = path.reduce((m, e, i) => (e.from < path[m]!.from ? i : m), 0);
      found.add([...path.slice(first), ...path.slice(0, first)].map(named).join(", "));
    }
  }
  return [...found];
}

describe("the import graph of the compiled proxy/", () => {
  it("is read whole: every relative import is placed in the build", () => {
    // A misread graph would pass every rule below: it must hold the layers and a sane number of edges.
    for (const folder of ["core/", "evidence/", "collateral/", "attest/", "server/", "client/", "cli/", "exports/"]) {
      assert.ok(
        modules.some((m) => m.startsWith(folder)),
        `no module under ${folder} in ${ROOT}`,
      );
    }
    assert.ok(edges.length > modules.length, `${edges.length} edges among ${modules.length} modules`);
    assert.deepEqual(unplaced, []);
  });

  for (const [rule, forbidden] of RULES) {
    it(rule, () => {
      assert.deepEqual(edges.filter(forbidden).map(named), []);
    });
  }

  it("has no cycle", () => {
    assert.deepEqual(cycles(), []);
  });
});

describe("the sources under proxy/", () => {
  it(`are ${MAX_LINES} lines or fewer each`, () => {
    const sources = walk(join(REPO, "proxy")).filter((f) => f.endsWith(".ts"));
    assert.ok(sources.length > 10, "no sources found");
    const long = sources
      .map((f) => {
        const text = readFileSync(f, "utf8");
        const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
        return { file: relative(REPO, f).split(sep).join("/"), lines };
      })
      .filter((s) => s.lines > MAX_LINES)
      .map((s) => `${s.file}: ${s.lines} lines`);
    assert.deepEqual(long, []);
  });
});
