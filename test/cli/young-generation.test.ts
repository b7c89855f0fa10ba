/** serve's start-up hold on V8's new-space growth stands aside when the operator chose the factor. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { growthFactorSet } from "../../proxy/cli/young-generation.js";

describe("young generation hold", () => {
  it("sees the growth factor set on the command line or in NODE_OPTIONS, in either spelling", () => {
    assert.equal(growthFactorSet(["--semi-space-growth-factor=4"], undefined), true);
    assert.equal(growthFactorSet(["--semi_space_growth_factor", "4"], undefined), true);
    assert.equal(growthFactorSet([], "--max-old-space-size=512 --semi-space-growth-factor=3"), true);
  });

  it("holds otherwise, other V8 flags included", () => {
    assert.equal(growthFactorSet([], undefined), false);
    assert.equal(growthFactorSet(["--max-semi-space-size=16", "--enable-source-maps"], ""), false);
    assert.equal(growthFactorSet([], "--semi-space-growth-factors=2 --trace-gc"), false);
  });
});
