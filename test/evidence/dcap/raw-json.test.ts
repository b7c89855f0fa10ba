import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { splitSignedBody } from "../../../proxy/evidence/dcap/collateral.js";
import { rawMembers } from "../../../proxy/evidence/dcap/raw-json.js";
import { vectorPath } from "../../support/vectors.js";

describe("raw JSON members (signatures cover the bytes as served)", () => {
  it("returns each member's exact source text, whitespace and key order kept", () => {
    const text = ' { "a" : {"z":1,  "y":[1,{"q":"}\\"]"}]} , "b":"x\\"y", "c": 12.5e3 ,"d":null}';
    const { raw } = rawMembers(text, "t");
    assert.equal(raw.get("a"), '{"z":1,  "y":[1,{"q":"}\\"]"}]}');
    assert.equal(raw.get("b"), '"x\\"y"');
    assert.equal(raw.get("c"), "12.5e3");
    assert.equal(raw.get("d"), "null");
  });

  it("refuses a duplicated top-level key (parsed and signed text could differ)", () => {
    assert.throws(() => rawMembers('{"tcbInfo":{"a":1},"tcbInfo":{"a":2}}', "t"), /duplicate key "tcbInfo"/);
  });

  it("refuses non-JSON and non-objects", () => {
    assert.throws(() => rawMembers('{"a":', "t"), { code: "COLLATERAL_JSON" });
    assert.throws(() => rawMembers("[1]", "t"), { code: "COLLATERAL_JSON" });
  });

  it("the inner tcbInfo text of a real PCS body is what the dcap-qvl file carries, byte for byte", () => {
    const body = readFileSync(vectorPath("sgx/phala/collateral/tcb-info.json"), "utf8");
    const qvl = JSON.parse(readFileSync(vectorPath("sgx/phala/collateral.dcap-qvl.json"), "utf8"));
    const { text, signature } = splitSignedBody(body, "tcbInfo", "tcb-info.json");
    assert.equal(text, qvl.tcb_info);
    assert.equal(Buffer.from(signature).toString("hex"), qvl.tcb_info_signature.toLowerCase());
  });
});
