/**
 * Dev collateral: TCB info, QE identity and CRLs for the dev platform, signed by the dev PKI, for
 * any TCB status, so tests (and dev users) can drive every branch of the verifier with real
 * signatures. For `tee: "tdx"`: TCB info id TDX (v3, with TDX components, the TDX module and its
 * identity TDX_01) and QE identity id TD_QE, matching the dev provider's TDX quotes. The output has the shape of a PCCS's answers (CollateralParts), and can be written
 * as a PCS-layout directory for `inspect --collateral`.
 */
import { sign } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InputError } from "../../core/errors.js";
import type { CollateralParts } from "../../evidence/dcap/collateral.js";
import type { TcbStatus } from "../../evidence/verdict.js";
import { buildCrl, keyIdentifier } from "../build/x509.js";
import { DEV_QE } from "./provider.js";
import { DEV_PLATFORM, PCK_CA_NAME, ROOT_NAME, type DevPki } from "./pki.js";
import { DEV_TDX } from "./tdx-quote.js";

export interface DevCollateralOptions {
  /** Collateral for the dev provider's SGX quotes (default) or its TDX quotes. */
  tee?: "sgx" | "tdx";
  /** TDX: the TDX module's status (default UpToDate). */
  tdxModuleStatus?: "UpToDate" | "OutOfDate" | "Revoked";
  /** The platform's TCB status (default UpToDate). */
  status?: TcbStatus;
  advisoryIds?: string[];
  /** The dev QE's status (default UpToDate). */
  qeStatus?: "UpToDate" | "OutOfDate" | "Revoked";
  qeAdvisoryIds?: string[];
  /** TCB info version (default 3; TDX has only 3). */
  tcbInfoVersion?: 2 | 3;
  /** Issue time of every piece (default: an hour ago); nextUpdate is 30 days later unless given. */
  issued?: Date;
  nextUpdate?: Date;
  /** List the dev PCK certificate in the PCK CRL. */
  revokePck?: boolean;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

function level(version: 2 | 3, components: readonly number[], pcesvn: number, status: string, advisoryIds: string[] | undefined, tdx?: readonly number[]): object {
  const tcb =
    version === 3
      ? { sgxtcbcomponents: components.map((svn) => ({ svn })), pcesvn, ...(tdx ? { tdxtcbcomponents: tdx.map((svn) => ({ svn })) } : {}) }
      : { ...Object.fromEntries(components.map((svn, i) => [`sgxtcbcomp${String(i + 1).padStart(2, "0")}svn`, svn])), pcesvn };
  return { tcb, tcbDate: "2025-01-01T00:00:00Z", tcbStatus: status, ...(advisoryIds?.length ? { advisoryIDs: advisoryIds } : {}) };
}

const signHex = (pki: DevPki, text: string) => sign("sha256", Buffer.from(text), { key: pki.tcbSigning.key, dsaEncoding: "ieee-p1363" });

/** ISVSVN levels (QE identity, TDX module identity): an OutOfDate one sits below a newer UpToDate. */
function svnLevels(svn: number, status: "UpToDate" | "OutOfDate" | "Revoked", advisoryIds: string[] | undefined): object[] {
  const adv = advisoryIds?.length ? { advisoryIDs: advisoryIds } : {};
  return status === "OutOfDate"
    ? [
        { tcb: { isvsvn: svn + 1 }, tcbDate: "2025-01-01T00:00:00Z", tcbStatus: "UpToDate" },
        { tcb: { isvsvn: svn }, tcbDate: "2024-01-01T00:00:00Z", tcbStatus: "OutOfDate", ...adv },
      ]
    : [{ tcb: { isvsvn: svn }, tcbDate: "2025-01-01T00:00:00Z", tcbStatus: status, ...adv }];
}

/** The TDX members of a TDX TCB info: the module of version 0 and the identity of the dev module's version. */
function tdxModules(status: "UpToDate" | "OutOfDate" | "Revoked"): object {
  const seam = { mrsigner: hex(DEV_TDX.mrSignerSeam), attributes: hex(DEV_TDX.seamAttributes), attributesMask: "FFFFFFFFFFFFFFFF" };
  return { tdxModule: seam, tdxModuleIdentities: [{ id: DEV_TDX.moduleId, ...seam, tcbLevels: svnLevels(DEV_TDX.teeTcbSvn[0]!, status, undefined) }] };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").toUpperCase();

export function devCollateral(pki: DevPki, opts: DevCollateralOptions = {}): CollateralParts {
  const tee = opts.tee ?? "sgx";
  const version = opts.tcbInfoVersion ?? 3;
  if (tee === "tdx" && version !== 3) throw new InputError("DEV_OPTIONS_INVALID", `TDX TCB info exists only as version 3, not ${version}`);
  const tdx = tee === "tdx" ? [...DEV_TDX.teeTcbSvn] : undefined;
  const status = opts.status ?? "UpToDate";
  const issued = opts.issued ?? new Date(Date.now() - 3600_000);
  const next = opts.nextUpdate ?? new Date(issued.getTime() + 30 * 86_400_000);
  const comps = DEV_PLATFORM.tcbComponents;
  // A newer level the platform does not reach comes first, as in Intel's TCB info; the platform's
  // own level carries the chosen status.
  const levels = [
    ...(status === "UpToDate"
      ? []
      : [
          level(
            version,
            comps.map((c) => Math.min(255, c + 1)),
            DEV_PLATFORM.pceSvn + 1,
            "UpToDate",
            undefined,
            tdx?.map((c) => Math.min(255, c + 1)),
          ),
        ]),
    level(version, comps, DEV_PLATFORM.pceSvn, status, opts.advisoryIds, tdx),
  ];
  const tcbInfo = JSON.stringify({
    ...(version === 3 ? { id: tee === "tdx" ? "TDX" : "SGX" } : {}),
    version,
    issueDate: iso(issued),
    nextUpdate: iso(next),
    fmspc: Buffer.from(DEV_PLATFORM.fmspc).toString("hex").toUpperCase(),
    pceId: Buffer.from(DEV_PLATFORM.pceId).toString("hex"),
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    ...(tee === "tdx" ? tdxModules(opts.tdxModuleStatus ?? "UpToDate") : {}),
    tcbLevels: levels,
  });
  const qeLevels = svnLevels(DEV_QE.isvSvn, opts.qeStatus ?? "UpToDate", opts.qeAdvisoryIds);
  const qeIdentity = JSON.stringify({
    id: tee === "tdx" ? "TD_QE" : "QE",
    version: 2,
    issueDate: iso(issued),
    nextUpdate: iso(next),
    tcbEvaluationDataNumber: 17,
    miscselect: "00000000",
    miscselectMask: "FFFFFFFF",
    attributes: "11000000000000000000000000000000",
    attributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
    mrsigner: hex(DEV_QE.mrsigner),
    isvprodid: DEV_QE.isvProdId,
    tcbLevels: qeLevels,
  });
  const pckCrl = buildCrl({
    issuer: PCK_CA_NAME,
    signingKey: pki.pckCa.key,
    thisUpdate: issued,
    nextUpdate: next,
    revoked: opts.revokePck ? [{ serial: pki.pck.cert.serial, date: issued }] : [],
    authorityKeyId: keyIdentifier(pki.pckCa.cert.spki),
  });
  const rootCrl = buildCrl({ issuer: ROOT_NAME, signingKey: pki.root.key, thisUpdate: issued, nextUpdate: next, authorityKeyId: keyIdentifier(pki.root.cert.spki) });
  return {
    tcbInfo,
    tcbInfoSignature: new Uint8Array(signHex(pki, tcbInfo)),
    tcbInfoIssuerChain: pki.tcbSigning.pem + pki.root.pem,
    qeIdentity,
    qeIdentitySignature: new Uint8Array(signHex(pki, qeIdentity)),
    qeIdentityIssuerChain: pki.tcbSigning.pem + pki.root.pem,
    pckCrl,
    pckCrlIssuerChain: pki.pckCa.pem + pki.root.pem,
    rootCaCrl: rootCrl,
  };
}

/** Write collateral in the PCS layout that `loadCollateral` and `inspect --collateral` read. */
export async function writeCollateralDirectory(dir: string, p: CollateralParts): Promise<void> {
  await mkdir(dir, { recursive: true });
  const body = (member: string, text: string, sig: Uint8Array) => `{"${member}":${text},"signature":"${Buffer.from(sig).toString("hex")}"}`;
  await Promise.all([
    writeFile(join(dir, "tcb-info.json"), body("tcbInfo", p.tcbInfo, p.tcbInfoSignature)),
    writeFile(join(dir, "qe-identity.json"), body("enclaveIdentity", p.qeIdentity, p.qeIdentitySignature)),
    writeFile(join(dir, "tcb-info-issuer-chain.pem"), p.tcbInfoIssuerChain),
    writeFile(join(dir, "qe-identity-issuer-chain.pem"), p.qeIdentityIssuerChain),
    writeFile(join(dir, "pck-crl-issuer-chain.pem"), p.pckCrlIssuerChain),
    writeFile(join(dir, "pck-crl.der"), p.pckCrl),
    writeFile(join(dir, "root-ca-crl.der"), p.rootCaCrl),
  ]);
}
