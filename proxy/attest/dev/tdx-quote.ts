/**
 * What the dev provider quotes as a TDX trust domain: a quote v4 header (TEE type 0x81) and a TD
 * report body 1.0 in Intel's layout, with dev measurements. Dev TDX collateral (dev/collateral.ts)
 * describes the same TDX module and TEE_TCB_SVN, so the verifier's TDX checks all run.
 *
 * - MRTD stands for the code, as the dev MRENCLAVE does (SHA-384 over the proxy's compiled files);
 *   RTMR0–2 stand for firmware, kernel and command line, each extended once from zero as a TD's
 *   boot would; RTMR3 is left zero, as a TD that extends nothing at run time has it.
 * - TDATTRIBUTES: DEBUG (bit 0) set, as every dev quote says it is not protected, and
 *   SEPT_VE_DISABLE (bit 28) as a typical TD has it.
 * - TEE_TCB_SVN: TDX module SVN 4, module version 1 (identity TDX_01), late microcode 2.
 */
import { createHash } from "node:crypto";
import { InputError } from "../../core/errors.js";
import { HEADER_BYTES, TD_REPORT_10_BYTES, TEE_TYPE_TDX } from "../../evidence/dcap/quote.js";

const sha384 = (...parts: (string | Uint8Array)[]): Uint8Array => {
  const h = createHash("sha384");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** RTMR extend: SHA-384(old ‖ digest). */
export function extendRtmr(old: Uint8Array, digest: Uint8Array): Uint8Array {
  return sha384(old, digest);
}

/** The dev TDX platform's TDX side: what dev quotes carry and dev TDX collateral matches. */
export const DEV_TDX = {
  teeTcbSvn: Uint8Array.of(4, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
  /** Module version (TEE_TCB_SVN[1]) 1: the TCB info's identity TDX_01 judges the module. */
  moduleId: "TDX_01",
  mrSeam: sha384("attestable-mcp dev TDX module"),
  /** Intel signs its TDX modules with an all-zero MRSIGNERSEAM. */
  mrSignerSeam: new Uint8Array(48),
  seamAttributes: new Uint8Array(8),
  tdAttributes: Uint8Array.of(0x01, 0, 0, 0x10, 0, 0, 0, 0),
  /** x87, SSE, AVX, AVX-512 state, PK, CET: as a TD's XFAM commonly is. */
  xfam: Uint8Array.from(Buffer.from("e702060000000000", "hex")),
} as const;

/** The fields of a TD report body that a TDX policy pins (each 48 bytes). */
export interface DevTdMeasurements {
  mrtd: Uint8Array;
  rtmr: [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  mrconfigid: Uint8Array;
  mrowner: Uint8Array;
  mrownerconfig: Uint8Array;
}

/** Dev TD measurements around an MRTD; `over` replaces any of them. */
export function devTdMeasurements(mrtd: Uint8Array, over: Partial<DevTdMeasurements> = {}): DevTdMeasurements {
  const zero = new Uint8Array(48);
  const boot = (what: string) => extendRtmr(zero, sha384(`attestable-mcp dev ${what}`));
  const m: DevTdMeasurements = {
    mrtd,
    rtmr: [boot("firmware configuration"), boot("kernel"), boot("kernel command line and initrd"), zero],
    mrconfigid: sha384("attestable-mcp dev MRCONFIGID"),
    mrowner: zero,
    mrownerconfig: zero,
    ...over,
  };
  for (const [k, v] of [["mrtd", m.mrtd], ["mrconfigid", m.mrconfigid], ["mrowner", m.mrowner], ["mrownerconfig", m.mrownerconfig], ...m.rtmr.map((r, i) => [`rtmr${i}`, r] as const)] as const) {
    if (!(v instanceof Uint8Array) || v.length !== 48) throw new InputError("DEV_OPTIONS_INVALID", `dev TD ${k} must be 48 bytes`);
  }
  return m;
}

/** Quote v4 header for a TDX quote: QE and PCE SVN fields are zero, as real TDX quotes carry them. */
export function tdxHeader(qeVendorId: Uint8Array): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES);
  const v = new DataView(h.buffer);
  v.setUint16(0, 4, true);
  v.setUint16(2, 2, true); // ECDSA-256-with-P-256
  v.setUint32(4, TEE_TYPE_TDX, true);
  h.set(qeVendorId, 12);
  return h;
}

/** TD report body 1.0 (584 bytes). */
export function tdReportBody(td: DevTdMeasurements, reportData: Uint8Array): Uint8Array {
  const b = new Uint8Array(TD_REPORT_10_BYTES);
  b.set(DEV_TDX.teeTcbSvn, 0);
  b.set(DEV_TDX.mrSeam, 16);
  b.set(DEV_TDX.mrSignerSeam, 64);
  b.set(DEV_TDX.seamAttributes, 112);
  b.set(DEV_TDX.tdAttributes, 120);
  b.set(DEV_TDX.xfam, 128);
  b.set(td.mrtd, 136);
  b.set(td.mrconfigid, 184);
  b.set(td.mrowner, 232);
  b.set(td.mrownerconfig, 280);
  for (const [i, r] of td.rtmr.entries()) b.set(r, 328 + 48 * i);
  b.set(reportData, 520);
  return b;
}
