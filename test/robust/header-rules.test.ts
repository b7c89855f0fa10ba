/**
 * Client headers against a spawned `serve` over raw TLS: the proxy's verdict headers cannot be
 * forged in any spelling (`X_Attested_Client_Verdict`, any case, `X-Authenticated-Subject`), the
 * proxy's own headers reach the upstream first, more than limits.maxHeaders header lines get 431
 * (the ~2000-header push past a Node upstream's limit), and absolute-form targets, a second Host
 * and a version-less request line get 400 in the listener, for an HTTP and a stdio upstream alike,
 * with nothing sent upstream.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { STDIO_SCRIPT, spawnServe, type SpawnedServe, rawExchange } from "../support/robust.js";
import { listen, portOf, shut } from "../support/upstream.js";
import { tempDir } from "../support/wait.js";

/** Writes `text` on a pinned TLS connection; resolves with everything read until the close. */
function raw(s: SpawnedServe, text: string): Promise<string> {
  // One response is all we ask for: close once its body is in.
  return rawExchange(s, text, (got) => {
    const head = got.indexOf("\r\n\r\n");
    const len = /\r\ncontent-length: (\d+)/i.exec(got.slice(0, head));
    return head > 0 && len !== null && got.length >= head + 4 + Number(len[1]);
  });
}

/** The first header line after the ones the HTTP client itself writes first (host, connection). */
const ours = (raw: string[]): string[] => {
  const i = raw.findIndex((n, k) => k % 2 === 0 && !["host", "connection"].includes(n.toLowerCase()));
  return raw.slice(i, i + 2);
};

const status = (response: string): number => Number(/^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1] ?? 0);

/** Every request the upstream got, as its raw header lines. */
const seen: string[][] = [];
const upstream = http.createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
  seen.push(req.rawHeaders);
  req.resume();
  req.on("end", () => res.end("ok"));
});
// Node's own cap (2000) is the one the attack aimed at: keep it, so the test shows it no longer matters.
upstream.maxHeadersCount = 2000;

let httpServe: SpawnedServe | undefined;
let stdioServe: SpawnedServe | undefined;

before(async () => {
  await listen(upstream);
  // Optional mutual attestation: a client without a certificate is admitted and the listener
  // tells the upstream so (X-Attested-Client-Verdict: absent), which is the header to forge.
  const policy = join(tempDir("amcp-headers-"), "client-policy.yaml");
  writeFileSync(policy, "trustRoots: [intel]\nmeasurements: any\nfreshness: certificate\n");
  [httpServe, stdioServe] = await Promise.all([
    spawnServe(`upstream: { url: "http://127.0.0.1:${portOf(upstream)}" }\nclientAttestation: { mode: optional, policy: "${policy}" }\n`),
    spawnServe(`upstream: { command: ["${process.execPath}", "${STDIO_SCRIPT}"] }\n`),
  ]);
});
after(async () => {
  await Promise.all([httpServe?.stop(), stdioServe?.stop()]);
  await shut(upstream);
});

describe("client headers never speak for the proxy", { timeout: 60_000 }, () => {
  it("X_Attested_Client_*, x-attested-client-* in any case and X-Authenticated-Subject (either spelling) are dropped; the proxy's verdict comes first, after Host", async () => {
    seen.length = 0;
    const forged = ["X_Attested_Client_Verdict: trusted", "x-attested-client-mrenclave: ffff", "X-ATTESTED_CLIENT-MRSIGNER: eeee", "X_Authenticated_Subject: admin", "x-authenticated-subject: admin"];
    const r = await raw(httpServe!, `GET /h HTTP/1.1\r\nHost: robust\r\nX-Keep: 1\r\n${forged.join("\r\n")}\r\nConnection: close\r\n\r\n`);
    assert.equal(status(r), 200, r);
    assert.equal(seen.length, 1);
    const names = seen[0]!.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replace(/_/g, "-"));
    assert.deepEqual(
      names.filter((n) => n.startsWith("x-attested-client-") || n === "x-authenticated-subject"),
      ["x-attested-client-verdict"],
    );
    assert.deepEqual(ours(seen[0]!), ["X-Attested-Client-Verdict", "absent"]);
    assert.ok(names.includes("x-keep"));
  });

  it("100 client header lines pass with the verdict first; 1994 small ones (which pushed an appended verdict past a Node upstream's 2000) get 431 and never reach the upstream", async () => {
    seen.length = 0;
    const lines = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
    const ok = await raw(httpServe!, `GET /h HTTP/1.1\r\nHost: robust\r\nConnection: close\r\n${lines(98)}\r\n`);
    assert.equal(status(ok), 200, ok);
    assert.deepEqual(ours(seen[0]!), ["X-Attested-Client-Verdict", "absent"]);
    // Small enough to fit limits.maxHeaderSize (16 KiB): only the count is wrong.
    const tiny = Array.from({ length: 1994 }, (_, i) => `a: ${i % 10}\r\n`).join("");
    const flood = await raw(httpServe!, `GET /h HTTP/1.1\r\nHost: robust\r\nConnection: close\r\n${tiny}\r\n`);
    assert.equal(status(flood), 431, flood.slice(0, 200));
    assert.match(flood, /limits\.maxHeaders/);
    assert.equal(seen.length, 1, "only the first request reached the upstream");
  });
});

describe("request heads the listener refuses before routing", { timeout: 60_000 }, () => {
  const CASES: [string, string][] = [
    ["absolute-form target", "GET http://evil.example/h HTTP/1.1\r\nHost: robust\r\nConnection: close\r\n\r\n"],
    ["asterisk-form target", "OPTIONS * HTTP/1.1\r\nHost: robust\r\nConnection: close\r\n\r\n"],
    ["two Host headers", "GET /h HTTP/1.1\r\nHost: robust\r\nHost: evil.example\r\nConnection: close\r\n\r\n"],
    ["a version-less request line", "GET /h\r\n\r\n"],
    ["a version-less request line with headers", "GET /h\r\nHost: robust\r\n\r\n"],
    ["an absolute-form Upgrade", "GET http://evil.example/ws HTTP/1.1\r\nHost: robust\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"],
    ["an Upgrade with two Host headers", "GET /ws HTTP/1.1\r\nHost: robust\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"],
  ];
  for (const kind of ["HTTP", "stdio"] as const) {
    it(`${kind} upstream: ${CASES.map(([n]) => n).join(", ")} → 400; nothing reaches the upstream`, async () => {
      const s = kind === "HTTP" ? httpServe! : stdioServe!;
      seen.length = 0;
      const answers = await Promise.all(CASES.map(([, text]) => raw(s, text)));
      for (const [i, [name]] of CASES.entries()) assert.equal(status(answers[i]!), 400, `${name}: ${answers[i]!.slice(0, 120)}`);
      if (kind === "HTTP") assert.equal(seen.length, 0, "the upstream saw a request");
      // The listener still serves a well-formed request on a new connection.
      const good = await raw(s, `GET /healthz HTTP/1.1\r\nHost: robust\r\nConnection: close\r\n\r\n`);
      assert.equal(status(good), 200, good.slice(0, 200));
    });
  }
});
