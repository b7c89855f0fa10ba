/**
 * The quoting enclaves a quote may come from, built in, so that the QE is checked with or without
 * collateral. The PCK leaf signs whatever QE report it is handed by an enclave holding the
 * provisioning key; on a platform with flexible launch control a host can launch an enclave of
 * its own with that key and act as its own QE. Collateral names Intel's QE (the QE identity), but
 * a policy with `tcb.require: false` has none: the identity below is then what the QE report must
 * match. Values as Intel publishes them in its QE identity (api.trustedservices.intel.com
 * …/qe/identity, enclaveIdentity id "QE" and "TD_QE"; the copies in test/fixtures/vectors/*\/
 * collateral/qe-identity.json), MISCSELECT and ATTRIBUTES under Intel's masks.
 */
import { createHash } from "node:crypto";
import { equalBytes, toHex } from "../../core/bytes.js";
import type { Result } from "../../core/result.js";
import type { SgxReportBody } from "./quote.js";

export interface KnownQe {
  /** How a verdict names it. */
  name: string;
  mrsigner: Uint8Array;
  isvProdId: number;
  miscselect: number;
  miscselectMask: number;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
}

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
/** INIT | PROVISIONKEY required, DEBUG refused; MODE64BIT and XFRM not compared. */
const ATTRIBUTES = hex("11000000000000000000000000000000");
const ATTRIBUTES_MASK = hex("fbffffffffffffff0000000000000000");

/** Intel's SGX quoting enclave (QE3): enclaveIdentity id "QE". */
export const INTEL_SGX_QE: KnownQe = {
  name: "Intel's SGX quoting enclave (QE)",
  mrsigner: hex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff"),
  isvProdId: 1,
  miscselect: 0,
  miscselectMask: 0xffffffff,
  attributes: ATTRIBUTES,
  attributesMask: ATTRIBUTES_MASK,
};

/** Intel's TDX quoting enclave: enclaveIdentity id "TD_QE". */
export const INTEL_TD_QE: KnownQe = {
  name: "Intel's TDX quoting enclave (TD_QE)",
  mrsigner: hex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5"),
  isvProdId: 2,
  miscselect: 0,
  miscselectMask: 0xffffffff,
  attributes: ATTRIBUTES,
  attributesMask: ATTRIBUTES_MASK,
};

/** The dev provider's stand-in QE (attest/dev): what quotes under any other trust root must come from. */
export const DEV_QE_IDENTITY: KnownQe = {
  name: "the dev quoting enclave",
  mrsigner: new Uint8Array(createHash("sha256").update("attestable-mcp dev quoting enclave").digest()),
  isvProdId: 1,
  miscselect: 0,
  miscselectMask: 0xffffffff,
  attributes: ATTRIBUTES,
  attributesMask: ATTRIBUTES_MASK,
};

/** The QE a quote must come from, by the root its PCK chain reached and its TEE. */
export function expectedQe(intelRooted: boolean, tee: "SGX" | "TDX"): KnownQe {
  if (!intelRooted) return DEV_QE_IDENTITY;
  return tee === "TDX" ? INTEL_TD_QE : INTEL_SGX_QE;
}

/** The QE report against a known QE: MRSIGNER, ISVPRODID, MISCSELECT and ATTRIBUTES under the masks. */
export function checkQeEnclave(qe: SgxReportBody, want: KnownQe): Result {
  if (!equalBytes(qe.mrSigner, want.mrsigner)) return { ok: false, reason: `QE MRSIGNER ${toHex(qe.mrSigner)} is not ${want.name}'s (${toHex(want.mrsigner)})` };
  if (qe.isvProdId !== want.isvProdId) return { ok: false, reason: `QE ISVPRODID ${qe.isvProdId} is not ${want.name}'s (${want.isvProdId})` };
  if ((qe.miscSelect & want.miscselectMask) >>> 0 !== (want.miscselect & want.miscselectMask) >>> 0) {
    return { ok: false, reason: `QE MISCSELECT ${qe.miscSelect.toString(16)} does not match ${want.name}'s under its mask` };
  }
  for (let i = 0; i < 16; i++) {
    const m = want.attributesMask[i]!;
    if ((qe.attributes[i]! & m) !== (want.attributes[i]! & m)) return { ok: false, reason: `QE ATTRIBUTES ${toHex(qe.attributes)} do not match ${want.name}'s under its mask (byte ${i})` };
  }
  return { ok: true, value: `QE report is from ${want.name}: MRSIGNER ${toHex(want.mrsigner).slice(0, 16)}…, ISVPRODID ${want.isvProdId}` };
}
