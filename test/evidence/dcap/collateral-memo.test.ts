/**
 * Collateral given as a path is prepared once and remembered while its files keep their identity:
 * a second call reads nothing, a changed file is read again, a removed one fails the call, the
 * memory is bounded, and the verdict is the same as from collateral prepared afresh.
 */
import assert from "node:assert/strict";
import { cpSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { prepareCollateral } from "../../../proxy/evidence/dcap/collateral.js";
import { type CollateralFs, type CollateralIo, loadCollateralPath, partsFromPcsDirectory } from "../../../proxy/evidence/dcap/collateral-files.js";
import { CollateralMemo } from "../../../proxy/evidence/dcap/collateral-memo.js";
import { verifyQuote } from "../../../proxy/evidence/dcap/verify.js";
import { CollateralError } from "../../../proxy/core/errors.js";
import { tempDir } from "../../support/wait.js";
import { vector, vectorPath } from "../../support/vectors.js";

const CASES = [
  { quote: "sgx/phala/quote.bin", collateral: "sgx/phala/collateral", at: new Date("2025-07-19T10:01:17Z") },
  { quote: "sgx/automata/quote.bin", collateral: "sgx/automata/collateral", at: new Date("2025-08-15T05:45:00Z") },
];

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A private copy of a vector's collateral directory, free to change. */
function copyOf(collateral: string): string {
  const d = tempDir("amcp-col-");
  dirs.push(d);
  cpSync(vectorPath(collateral), d, { recursive: true });
  return d;
}

/** The real file system, counting reads. */
function counting(max = 4): CollateralIo & { reads: string[] } {
  const reads: string[] = [];
  const fs: CollateralFs = {
    stat,
    readFile: (p) => {
      reads.push(p);
      return readFile(p);
    },
  };
  return { fs, memo: new CollateralMemo(max), reads };
}

describe("collateral remembered by path and file identity", () => {
  it("a second call on an unchanged directory reads no file", async () => {
    const dir = copyOf(CASES[0]!.collateral);
    const io = counting();
    const first = await loadCollateralPath(dir, io);
    assert.equal(io.reads.length, 7);
    const second = await loadCollateralPath(dir, io);
    assert.equal(io.reads.length, 7);
    assert.equal(second, first);
  });

  it("a file with a new modification time is read again, and the set prepared again", async () => {
    const dir = copyOf(CASES[0]!.collateral);
    const io = counting();
    const first = await loadCollateralPath(dir, io);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, "pck-crl.der"), later, later);
    const second = await loadCollateralPath(dir, io);
    assert.equal(io.reads.length, 14);
    assert.notEqual(second, first);
    assert.equal(await loadCollateralPath(dir, io), second);
    assert.equal(io.reads.length, 14);
  });

  it("a dcap-qvl JSON file is remembered the same way", async () => {
    const d = tempDir("amcp-col-");
    dirs.push(d);
    const file = join(d, "collateral.json");
    const parts = await partsFromPcsDirectory(vectorPath(CASES[0]!.collateral));
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    const qvl = {
      pck_crl_issuer_chain: parts.pckCrlIssuerChain,
      root_ca_crl: hex(parts.rootCaCrl),
      pck_crl: hex(parts.pckCrl),
      tcb_info_issuer_chain: parts.tcbInfoIssuerChain,
      tcb_info: parts.tcbInfo,
      tcb_info_signature: hex(parts.tcbInfoSignature),
      qe_identity_issuer_chain: parts.qeIdentityIssuerChain,
      qe_identity: parts.qeIdentity,
      qe_identity_signature: hex(parts.qeIdentitySignature),
    };
    writeFileSync(file, JSON.stringify(qvl));
    const io = counting();
    const first = await loadCollateralPath(file, io);
    assert.equal(await loadCollateralPath(file, io), first);
    assert.equal(io.reads.length, 1);
    writeFileSync(file, JSON.stringify(qvl, null, 1));
    assert.notEqual(await loadCollateralPath(file, io), first);
    assert.equal(io.reads.length, 2);
  });

  it("verifyQuote sees a changed collateral file at once, and the restored one after", async () => {
    const c = CASES[0]!;
    const dir = copyOf(c.collateral);
    const quote = vector(c.quote);
    const good = await verifyQuote(quote, { at: c.at, collateral: dir });
    assert.ok(good.ok, JSON.stringify(good.failed));
    const tcbPath = join(dir, "tcb-info.json");
    const original = readFileSync(tcbPath);
    writeFileSync(tcbPath, "{}");
    const broken = await verifyQuote(quote, { at: c.at, collateral: dir });
    assert.equal(broken.ok, false);
    assert.equal(broken.failed?.check, "collateral.format", JSON.stringify(broken.failed));
    writeFileSync(tcbPath, original);
    const again = await verifyQuote(quote, { at: c.at, collateral: dir });
    assert.deepEqual(again, good);
  });

  it("a file removed from a remembered directory fails the call instead of using the copy in memory", async () => {
    const dir = copyOf(CASES[0]!.collateral);
    const io = counting();
    await loadCollateralPath(dir, io);
    unlinkSync(join(dir, "root-ca-crl.der"));
    await assert.rejects(loadCollateralPath(dir, io), (e) => e instanceof CollateralError && e.code === "COLLATERAL_UNREADABLE" && /root-ca-crl\.der/.test(e.message));
  });

  it("keeps only the most recently used paths", async () => {
    const io = counting(2);
    const [a, b, c] = [copyOf(CASES[0]!.collateral), copyOf(CASES[1]!.collateral), copyOf(CASES[0]!.collateral)];
    await loadCollateralPath(a, io);
    await loadCollateralPath(b, io);
    await loadCollateralPath(a, io); // a is now the most recent, b the least
    await loadCollateralPath(c, io); // evicts b
    assert.equal(io.reads.length, 21);
    assert.equal(io.memo.size, 2);
    await loadCollateralPath(a, io);
    assert.equal(io.reads.length, 21);
    await loadCollateralPath(b, io);
    assert.equal(io.reads.length, 28);
  });

  for (const c of CASES) {
    it(`${c.quote}: the verdict from a remembered directory equals the one from collateral prepared afresh`, async () => {
      const quote = vector(c.quote);
      const dir = vectorPath(c.collateral);
      const fresh = await verifyQuote(quote, { at: c.at, collateral: prepareCollateral(await partsFromPcsDirectory(dir)) });
      const first = await verifyQuote(quote, { at: c.at, collateral: dir });
      const remembered = await verifyQuote(quote, { at: c.at, collateral: dir });
      assert.ok(fresh.ok, JSON.stringify(fresh.failed));
      assert.deepEqual(first, fresh);
      assert.deepEqual(remembered, fresh);
    });
  }
});
