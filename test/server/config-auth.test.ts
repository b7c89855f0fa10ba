/** auth.mode and the bearer keys file: read once at load; a bad line is named by its number. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../../proxy/server/config.js";
import { tempDir } from "../support/wait.js";

const dir = tempDir("amcp-config-auth-");
const base = 'attestation: { provider: dev }\nupstream: { command: ["node", "s.js"] }\n';
const hex = (t: string): string => createHash("sha256").update(t).digest("hex");
let n = 0;
/** A config (`keys.txt` in `yaml` stands for the keys file beside it, given relative to the working directory). */
function setup(yaml: string, keys?: string): string {
  const d = join(dir, String(n++));
  mkdirSync(d);
  if (keys !== undefined) writeFileSync(join(d, "keys.txt"), keys);
  writeFileSync(join(d, "c.yaml"), base + yaml.replace("keysFile: keys.txt", `keysFile: ${JSON.stringify(relative(process.cwd(), join(d, "keys.txt")))}`));
  return join(d, "c.yaml");
}
const refused = (file: string, source: RegExp, reason: RegExp) =>
  assert.rejects(loadConfig({ file }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, "auth.bearer.keysFile");
    assert.match(e.source, source);
    assert.match(e.reason, reason);
    return true;
  });
const bearer = "auth: { mode: bearer, bearer: { keysFile: keys.txt } }\n";

describe("config: auth", () => {
  it("defaults to none; bearer reads the keys file (relative to the working directory), comments and blanks allowed", async () => {
    assert.deepEqual((await loadConfig({ file: setup("") })).auth, { mode: "none" });
    const c = await loadConfig({ file: setup(bearer, `# ops\n\nalice ${hex("a")}\n  bob   ${hex("b").toUpperCase()}  \n`) });
    assert.equal(c.auth.mode, "bearer");
    if (c.auth.mode !== "bearer") return;
    assert.deepEqual(
      c.auth.keys.map((k) => [k.name, k.hash.toString("hex")]),
      [
        ["alice", hex("a")],
        ["bob", hex("b")],
      ],
    );
  });

  it("refuses a bad line, a duplicate name, a missing file, a keys file without bearer and bearer without one", async () => {
    await refused(setup(bearer, `alice ${hex("a")}\nbob not-a-hash\n`), /keys\.txt:2$/, /NAME SHA256-HEX-OF-TOKEN/);
    await refused(setup(bearer, `# c\nalice ${hex("a")}\nalice ${hex("b")}\n`), /keys\.txt:3$/, /appears twice/);
    await refused(setup(bearer, `a/b ${hex("a")}\n`), /keys\.txt:1$/, /not 1 to 64/);
    await refused(setup(bearer, "# only a comment\n"), /keys\.txt$/, /no key/);
    await refused(setup(bearer), /c\.yaml$/, /cannot read .*ENOENT/);
    await refused(setup("auth: { bearer: { keysFile: keys.txt } }\n"), /c\.yaml$/, /only applies to auth\.mode: bearer/);
    await refused(setup("auth: { mode: bearer }\n"), /default/, /required when auth\.mode is bearer/);
  });
});

describe("config: auth.mode oauth", () => {
  const oauth = (extra: string): string => `auth:\n  mode: oauth\n  oauth:\n${extra}`;
  const good = '    issuer: "https://as.example.com"\n    audience: "https://mcp.example.com/mcp"\n';
  const refusedKey = (yaml: string, key: string, reason: RegExp) =>
    assert.rejects(loadConfig({ file: setup(yaml) }), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.key, key);
      assert.match(e.reason, reason);
      return true;
    });

  it("takes the issuer, audience and scopes as written, jwksUrl null by default or https / loopback http", async () => {
    const c = await loadConfig({ file: setup(oauth(`${good}    scopes: [mcp.tools, "read:all"]\n`)) });
    assert.deepEqual(c.auth, { mode: "oauth", issuer: "https://as.example.com", jwksUrl: null, audience: "https://mcp.example.com/mcp", scopes: ["mcp.tools", "read:all"] });
    const local = await loadConfig({ file: setup(oauth('    issuer: "http://127.0.0.1:9000/realm"\n    jwksUrl: "http://[::1]:9000/jwks"\n    audience: "https://127.0.0.1:8443/mcp"\n')) });
    assert.equal(local.auth.mode === "oauth" && local.auth.jwksUrl, "http://[::1]:9000/jwks");
    assert.equal(local.auth.mode === "oauth" && local.auth.issuer, "http://127.0.0.1:9000/realm");
  });

  it("refuses each bad oauth input, naming its key", async () => {
    await refusedKey(oauth('    audience: "https://mcp.example.com/mcp"\n'), "auth.oauth.issuer", /required when auth\.mode is oauth/);
    await refusedKey(oauth('    issuer: "https://as.example.com"\n'), "auth.oauth.audience", /required when auth\.mode is oauth/);
    await refusedKey(oauth('    issuer: "http://as.example.com"\n    audience: "https://m/"\n'), "auth.oauth.issuer", /https: \(http: only on loopback\)/);
    await refusedKey(oauth('    issuer: "http://127.attacker.example"\n    audience: "https://m/"\n'), "auth.oauth.issuer", /https: \(http: only on loopback\)/);
    await refusedKey(oauth('    issuer: "not a url"\n    audience: "https://m/"\n'), "auth.oauth.issuer", /not a URL/);
    await refusedKey(oauth('    issuer: "https://as.example.com/?tenant=1"\n    audience: "https://m/"\n'), "auth.oauth.issuer", /no \?query/);
    await refusedKey(oauth('    issuer: "https://as.example.com#x"\n    audience: "https://m/"\n'), "auth.oauth.issuer", /no #fragment/);
    await refusedKey(oauth(`${good}    jwksUrl: "http://keys.example.com/jwks"\n`), "auth.oauth.jwksUrl", /https: \(http: only on loopback\)/);
    await refusedKey(oauth(`${good}    jwksUrl: 42\n`), "auth.oauth.jwksUrl", /non-empty string/);
    await refusedKey(oauth('    issuer: "https://as.example.com"\n    audience: "http://127.0.0.1:8443/mcp"\n'), "auth.oauth.audience", /must be an https: URL/);
    await refusedKey(oauth('    issuer: "https://as.example.com"\n    audience: "https://u:p@mcp.example.com/"\n'), "auth.oauth.audience", /no user:password@/);
    await refusedKey(oauth(`${good}    scopes: "mcp"\n`), "auth.oauth.scopes", /expected a list/);
    await refusedKey(oauth(`${good}    scopes: ["a b"]\n`), "auth.oauth.scopes", /is not a scope/);
    await refusedKey(oauth(`${good}    scopes: ['say"hi']\n`), "auth.oauth.scopes", /is not a scope/);
    await refusedKey(oauth(`${good}    scopes: [a, a]\n`), "auth.oauth.scopes", /appears twice/);
  });

  it("refuses oauth keys unless the mode is oauth, and a keys file with it", async () => {
    await refusedKey('auth: { oauth: { issuer: "https://as.example.com" } }\n', "auth.oauth.issuer", /only applies to auth\.mode: oauth \(auth\.mode is none\)/);
    await refusedKey("auth: { mode: bearer, bearer: { keysFile: k }, oauth: { scopes: [x] } }\n", "auth.oauth.scopes", /only applies to auth\.mode: oauth \(auth\.mode is bearer\)/);
    await refusedKey(oauth(`${good}  bearer: { keysFile: keys.txt }\n`), "auth.bearer.keysFile", /only applies to auth\.mode: bearer \(auth\.mode is oauth\)/);
    await refusedKey("auth: { mode: oidc }\n", "auth.mode", /none, bearer, oauth/);
  });
});
