/** TCB evaluation rules, driven through every status with hand-built TCB info v2 / v3 and QE identity. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseQeIdentity, parseTcbInfo, TCB_STATUSES } from "../../../proxy/evidence/dcap/collateral.js";
import { CollateralError } from "../../../proxy/core/errors.js";
import type { PckExtension } from "../../../proxy/evidence/asn1/sgx-extension.js";
import { parseQuote, parseSgxReportBody, type TdReportBody } from "../../../proxy/evidence/dcap/quote.js";
import { convergeTcbStatus, matchPlatformLevel, matchQeIdentity, matchTdxModule, mergeAdvisories } from "../../../proxy/evidence/dcap/tcb.js";
import type { TcbStatus } from "../../../proxy/evidence/verdict.js";
import { vector } from "../../support/vectors.js";

const comps = (n: number) => Array.from({ length: 16 }, () => n);

function tcbInfoV3(levels: { svn: number; pcesvn: number; status: string; adv?: string[] }[]) {
  return JSON.stringify({
    id: "SGX",
    version: 3,
    issueDate: "2025-01-01T00:00:00Z",
    nextUpdate: "2025-02-01T00:00:00Z",
    fmspc: "00A067110000",
    pceId: "0000",
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tcbLevels: levels.map((l) => ({
      tcb: { sgxtcbcomponents: comps(l.svn).map((svn) => ({ svn })), pcesvn: l.pcesvn },
      tcbDate: "2024-01-01T00:00:00Z",
      tcbStatus: l.status,
      ...(l.adv ? { advisoryIDs: l.adv } : {}),
    })),
  });
}

function tcbInfoV2(levels: { svn: number; pcesvn: number; status: string }[]) {
  return JSON.stringify({
    version: 2,
    issueDate: "2025-01-01T00:00:00Z",
    nextUpdate: "2025-02-01T00:00:00Z",
    fmspc: "00a067110000",
    pceId: "0000",
    tcbType: 0,
    tcbEvaluationDataNumber: 5,
    tcbLevels: levels.map((l) => ({
      tcb: { ...Object.fromEntries(comps(l.svn).map((svn, i) => [`sgxtcbcomp${String(i + 1).padStart(2, "0")}svn`, svn])), pcesvn: l.pcesvn },
      tcbDate: "2024-01-01T00:00:00Z",
      tcbStatus: l.status,
    })),
  });
}

function pck(svn: number, pceSvn: number, fmspc = "00a067110000"): PckExtension {
  return {
    ppid: new Uint8Array(16),
    tcbComponents: comps(svn),
    pceSvn,
    cpuSvn: new Uint8Array(16).fill(svn),
    pceId: new Uint8Array(2),
    fmspc: new Uint8Array(Buffer.from(fmspc, "hex")),
    sgxType: 0,
  };
}

describe("platform TCB level", () => {
  const levels = [
    { svn: 10, pcesvn: 13, status: "UpToDate" },
    { svn: 8, pcesvn: 13, status: "SWHardeningNeeded", adv: ["INTEL-SA-00615"] },
    { svn: 6, pcesvn: 10, status: "OutOfDate", adv: ["INTEL-SA-00289", "INTEL-SA-00615"] },
  ];
  for (const [name, text] of [
    ["v3", tcbInfoV3(levels)],
    ["v2", tcbInfoV2(levels)],
  ] as const) {
    const info = parseTcbInfo(text);
    it(`${name}: the first level whose components and PCESVN are all ≤ the platform's`, () => {
      assert.equal(info.version, name === "v3" ? 3 : 2);
      const at = (svn: number, pce: number) => {
        const r = matchPlatformLevel(info, pck(svn, pce));
        return r.ok ? r.value.sgx.status : r.reason;
      };
      assert.equal(at(10, 13), "UpToDate");
      assert.equal(at(11, 20), "UpToDate");
      assert.equal(at(9, 13), "SWHardeningNeeded");
      assert.equal(at(10, 12), "OutOfDate"); // PCESVN too low for the first two levels
      assert.equal(at(7, 11), "OutOfDate");
      assert.match(at(5, 13), /no TCB level matches/);
      assert.match(at(10, 9), /no TCB level matches/);
    });
  }

  it("one component below the level is enough to skip it", () => {
    const info = parseTcbInfo(tcbInfoV3(levels));
    const p = pck(10, 13);
    p.tcbComponents[7] = 9;
    const r = matchPlatformLevel(info, p);
    assert.ok(r.ok);
    assert.equal(r.value.sgx.status, "SWHardeningNeeded");
    assert.equal(r.value.tdx, null);
    assert.deepEqual(r.value.sgx.advisoryIds, ["INTEL-SA-00615"]);
  });

  it("FMSPC and PCE-ID must match", () => {
    const info = parseTcbInfo(tcbInfoV3(levels));
    const r = matchPlatformLevel(info, pck(10, 13, "00906ed50000"));
    assert.equal(r.ok, false);
    const p = pck(10, 13);
    p.pceId = new Uint8Array([0, 1]);
    assert.match((matchPlatformLevel(info, p) as { reason: string }).reason, /PCE-ID 0001/);
  });

  it("every Intel status parses; an unknown one is refused", () => {
    for (const s of TCB_STATUSES) assert.equal(parseTcbInfo(tcbInfoV3([{ svn: 1, pcesvn: 1, status: s }])).levels[0]!.status, s);
    assert.throws(
      () => parseTcbInfo(tcbInfoV3([{ svn: 1, pcesvn: 1, status: "Fine" }])),
      (e) => e instanceof CollateralError && /unknown TCB status "Fine"/.test(e.message),
    );
  });

  it("malformed TCB info names the field", () => {
    const bad = JSON.parse(tcbInfoV3(levels));
    bad.tcbLevels[1].tcb.sgxtcbcomponents.pop();
    assert.throws(() => parseTcbInfo(JSON.stringify(bad)), /tcbInfo\.tcbLevels\[1\]\.tcb\.sgxtcbcomponents: expected 16 components/);
    assert.throws(() => parseTcbInfo(JSON.stringify({ ...JSON.parse(tcbInfoV3(levels)), version: 4 })), /version 4 is not supported/);
    assert.throws(() => parseTcbInfo(JSON.stringify({ ...JSON.parse(tcbInfoV3(levels)), nextUpdate: "soon" })), /tcbInfo\.nextUpdate/);
    assert.throws(() => parseTcbInfo("{"), { code: "COLLATERAL_JSON" });
  });
});

describe("QE identity", () => {
  const qeReport = () => {
    const b = new Uint8Array(384);
    b.set(Buffer.from("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff", "hex"), 128); // MRSIGNER
    b[256] = 1; // ISVPRODID
    b[258] = 8; // ISVSVN
    b[48] = 0x15; // ATTRIBUTES.FLAGS: INIT | MODE64BIT | PROVISIONKEY (not DEBUG)
    return b;
  };
  const identity = parseQeIdentity(
    JSON.stringify({
      id: "QE",
      version: 2,
      issueDate: "2025-01-01T00:00:00Z",
      nextUpdate: "2025-02-01T00:00:00Z",
      tcbEvaluationDataNumber: 17,
      miscselect: "00000000",
      miscselectMask: "FFFFFFFF",
      attributes: "11000000000000000000000000000000",
      attributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
      mrsigner: "8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF",
      isvprodid: 1,
      tcbLevels: [
        { tcb: { isvsvn: 8 }, tcbDate: "2024-03-13T00:00:00Z", tcbStatus: "UpToDate" },
        { tcb: { isvsvn: 6 }, tcbDate: "2021-11-10T00:00:00Z", tcbStatus: "OutOfDate", advisoryIDs: ["INTEL-SA-00615"] },
        { tcb: { isvsvn: 2 }, tcbDate: "2019-01-01T00:00:00Z", tcbStatus: "Revoked" },
      ],
    }),
  );
  const status = (mutate: (b: Uint8Array) => void) => {
    const b = qeReport();
    mutate(b);
    const r = matchQeIdentity(identity, parseSgxReportBody(b), "QE");
    return r.ok ? r.value.status : r.reason;
  };

  it("levels by ISVSVN", () => {
    assert.equal(
      status(() => {}),
      "UpToDate",
    );
    assert.equal(
      status((b) => (b[258] = 7)),
      "OutOfDate",
    );
    assert.match(
      status((b) => (b[258] = 3)),
      /revoked/,
    );
    assert.match(
      status((b) => (b[258] = 1)),
      /below every level/,
    );
  });
  it("MRSIGNER, ISVPRODID, masked ATTRIBUTES and MISCSELECT must match", () => {
    assert.match(
      status((b) => (b[128] = b[128]! ^ 1)),
      /MRSIGNER/,
    );
    assert.match(
      status((b) => (b[256] = 2)),
      /ISVPRODID 2/,
    );
    assert.match(
      status((b) => (b[48] = b[48]! | 0x02)),
      /ATTRIBUTES/,
    ); // DEBUG bit is inside the mask
    assert.equal(
      status((b) => (b[48] = b[48]! | 0x04)),
      "UpToDate",
    ); // bit 2 is masked out (FB)
    assert.match(
      status((b) => (b[16] = 1)),
      /MISCSELECT/,
    );
  });
  it("a TD_QE identity is not a QE identity", () => {
    const r = matchQeIdentity(identity, parseSgxReportBody(qeReport()), "TD_QE");
    assert.equal(r.ok, false);
  });
});

describe("status convergence as Intel's QVL", () => {
  const expectWithQeOutOfDate: Record<TcbStatus, TcbStatus> = {
    UpToDate: "OutOfDate",
    SWHardeningNeeded: "OutOfDate",
    ConfigurationNeeded: "OutOfDateConfigurationNeeded",
    ConfigurationAndSWHardeningNeeded: "OutOfDateConfigurationNeeded",
    OutOfDate: "OutOfDate",
    OutOfDateConfigurationNeeded: "OutOfDateConfigurationNeeded",
    Revoked: "Revoked",
  };
  for (const platform of TCB_STATUSES) {
    it(`platform ${platform}: QE / module UpToDate keeps it, OutOfDate gives ${expectWithQeOutOfDate[platform]}, Revoked revokes`, () => {
      assert.equal(convergeTcbStatus(platform, "UpToDate"), platform);
      assert.equal(convergeTcbStatus(platform, "OutOfDate"), expectWithQeOutOfDate[platform]);
      assert.equal(convergeTcbStatus(platform, "Revoked"), "Revoked");
    });
  }
  it("advisories: union, platform first, no duplicates", () => {
    assert.deepEqual(mergeAdvisories(["INTEL-SA-00289", "INTEL-SA-00615"], ["INTEL-SA-00615", "INTEL-SA-00999"]), ["INTEL-SA-00289", "INTEL-SA-00615", "INTEL-SA-00999"]);
  });
});

describe("TDX platform level and module", () => {
  const zeros = (n: number) => "00".repeat(n);
  const info = (tdxModuleIdentities?: object[]) =>
    parseTcbInfo(
      JSON.stringify({
        id: "TDX",
        version: 3,
        issueDate: "2025-01-01T00:00:00Z",
        nextUpdate: "2025-02-01T00:00:00Z",
        fmspc: "00a067110000",
        pceId: "0000",
        tcbType: 0,
        tcbEvaluationDataNumber: 17,
        tdxModule: { mrsigner: zeros(48), attributes: zeros(8), attributesMask: "FF".repeat(8) },
        ...(tdxModuleIdentities ? { tdxModuleIdentities } : {}),
        tcbLevels: [
          { svn: 5, status: "UpToDate" },
          { svn: 3, status: "OutOfDate", adv: ["INTEL-SA-01000"] },
        ].map((l) => ({
          tcb: { sgxtcbcomponents: comps(2).map((svn) => ({ svn })), pcesvn: 13, tdxtcbcomponents: comps(l.svn).map((svn, i) => ({ svn: i === 0 ? 9 : i === 1 ? 0 : svn })) },
          tcbDate: "2024-01-01T00:00:00Z",
          tcbStatus: l.status,
          ...(l.adv ? { advisoryIDs: l.adv } : {}),
        })),
      }),
    );
  const tee = (bytes: number[]) => Uint8Array.from([...bytes, ...new Array(16 - bytes.length).fill(bytes[bytes.length - 1])]);
  const td = (teeTcbSvn: Uint8Array, mrSignerSeam = new Uint8Array(48), seamAttributes = new Uint8Array(8)) => ({ teeTcbSvn, mrSignerSeam, seamAttributes }) as unknown as TdReportBody;

  it("with a module version above 0, TEE_TCB_SVN bytes 0–1 are skipped (the module identity judges them)", () => {
    const r = matchPlatformLevel(info(), pck(2, 13), tee([1, 1, 5]));
    assert.ok(r.ok);
    assert.equal(r.value.tdx?.status, "UpToDate");
  });
  it("with module version 0 every byte counts: the level the bytes reach", () => {
    const r = matchPlatformLevel(info(), pck(2, 13), tee([9, 0, 4]));
    assert.ok(r.ok);
    assert.equal(r.value.tdx?.status, "OutOfDate");
    assert.equal(r.value.sgx.status, "UpToDate"); // the SGX-only match is the first level
    assert.match((matchPlatformLevel(info(), pck(2, 13), tee([1, 0, 9])) as { reason: string }).reason, /TEE_TCB_SVN/);
  });
  it("SGX TCB info for a TDX quote is refused", () => {
    const sgxInfo = parseTcbInfo(tcbInfoV3([{ svn: 1, pcesvn: 1, status: "UpToDate" }]));
    assert.equal(matchPlatformLevel(sgxInfo, pck(2, 13), tee([1, 1, 5])).ok, false);
  });

  const identity = (id: string, mrsigner = zeros(48)) => ({
    id,
    mrsigner,
    attributes: zeros(8),
    attributesMask: "FF".repeat(8),
    tcbLevels: [
      { tcb: { isvsvn: 3 }, tcbDate: "2024-03-13T00:00:00Z", tcbStatus: "UpToDate" },
      { tcb: { isvsvn: 1 }, tcbDate: "2023-01-01T00:00:00Z", tcbStatus: "OutOfDate", advisoryIDs: ["INTEL-SA-00960"] },
    ],
  });
  const moduleStatus = (teeTcbSvn: number[], ids = [identity("TDX_01"), identity("TDX_03")], quoteVersion = 4, body?: TdReportBody) => {
    const r = matchTdxModule(info(ids), quoteVersion, body ?? td(tee(teeTcbSvn)));
    return r.ok ? (r.value?.status ?? "no module status") : r.reason;
  };
  it("module identity TDX_<version> levels by TEE_TCB_SVN[0]", () => {
    assert.equal(moduleStatus([3, 1, 0]), "UpToDate");
    assert.equal(moduleStatus([2, 3, 0]), "OutOfDate");
    assert.match(moduleStatus([0, 1, 0]), /ISVSVN 0 is below every level of TDX_01/);
    assert.match(moduleStatus([3, 2, 0]), /no TDX module identity TDX_02/);
    assert.equal(moduleStatus([3, 0, 0]), "no module status");
  });
  it("MRSIGNERSEAM must equal and SEAMATTRIBUTES be zero", () => {
    const signer = new Uint8Array(48);
    signer[0] = 1;
    assert.match(moduleStatus([3, 1], undefined, 4, td(tee([3, 1]), signer)), /MRSIGNERSEAM/);
    const attrs = new Uint8Array(8);
    attrs[7] = 0x80;
    assert.match(moduleStatus([3, 1], undefined, 4, td(tee([3, 1]), undefined, attrs)), /SEAMATTRIBUTES/);
  });
  it("the real TDX quotes' module fields: phala v4 uses TDX_01, gcp-spr module version 0", () => {
    const v4 = parseQuote(vector("tdx/phala-v4/quote.bin"));
    const gcp = parseQuote(vector("tdx/gcp-spr/quote-with-trailing-bytes.dat"));
    assert.ok(v4.teeType === "TDX" && gcp.teeType === "TDX");
    assert.equal(v4.body.teeTcbSvn[1], 1);
    assert.equal(gcp.body.teeTcbSvn[1], 0);
  });
});
