/** auth.mode and the bearer keys file: read once at load; a bad line is named by its number. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../../proxy/server/config.js";
import { tempDir } from "../support/wait.js";

const dir = tempDir("amcp-config-auth-");
const base = 'attestation: { provider: dev }\nupstream: { command: ["node", "s.js"] }\n';
const hex = (t: string): string => createHash("sha256").update(t).digest("hex");
let n = 0;
function setup(yaml: string, keys?: string): string {
  const d = join(dir, String(n++));
  mkdirSync(d);
  if (keys !== undefined) writeFileSync(join(d, "keys.txt"), keys);
  writeFileSync(join(d, "c.yaml"), base + yaml);
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
  it("defaults to none; bearer reads the keys file relative to the config file, comments and blanks allowed", async () => {
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
