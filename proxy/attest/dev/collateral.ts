/**
 * Dev collateral: TCB info, QE identity and CRLs for the dev platform, signed by the dev PKI, for
 * any TCB status, so tests (and dev users) can drive every branch of the verifier with real
 * signatures. The output has the shape of a PCCS's answers (CollateralParts), and can be written
 * as a PCS-layout directory for `inspect --collateral`.
 */
import { sign } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CollateralParts } from "../../evidence/dcap/collateral.js";
import type { TcbStatus } from "../../evidence/verdict.js";
import { buildCrl, keyIdentifier } from "../build/x509.js";
import { DEV_QE } from "./provider.js";
import { DEV_PLATFORM, PCK_CA_NAME, ROOT_NAME, type DevPki } from "./pki.js";

export interface DevCollateralOptions {
  /** The platform's TCB status (default UpToDate). */
  status?: TcbStatus;
  advisoryIds?: string[];
  /** The dev QE's status (default UpToDate). */
  qeStatus?: "UpToDate" | "OutOfDate" | "Revoked";
  qeAdvisoryIds?: string[];
  /** TCB info version (default 3). */
  tcbInfoVersion?: 2 | 3;
  /** Issue time of every piece (default: an hour ago); nextUpdate is 30 days later unless given. */
  issued?: Date;
  nextUpdate?: Date;
  /** List the dev PCK certificate in the PCK CRL. */
  revokePck?: boolean;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

function level(version: 2 | 3, components: readonly number[], pcesvn: number, status: string, advisoryIds: string[] | undefined): object {
  const tcb =
    version === 3
      ? { sgxtcbcomponents: components.map((svn) => ({ svn })), pcesvn }
      : { ...Object.fromEntries(components.map((svn, i) => [`sgxtcbcomp${String(i + 1).padStart(2, "0")}svn`, svn])), pcesvn };
  return { tcb, tcbDate: "2025-01-01T00:00:00Z", tcbStatus: status, ...(advisoryIds?.length ? { advisoryIDs: advisoryIds } : {}) };
}

const signHex = (pki: DevPki, text: string) => sign("sha256", Buffer.from(text), { key: pki.tcbSigning.key, dsaEncoding: "ieee-p1363" });

export function devCollateral(pki: DevPki, opts: DevCollateralOptions = {}): CollateralParts {
  const version = opts.tcbInfoVersion ?? 3;
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
          ),
        ]),
    level(version, comps, DEV_PLATFORM.pceSvn, status, opts.advisoryIds),
  ];
  const tcbInfo = JSON.stringify({
    ...(version === 3 ? { id: "SGX" } : {}),
    version,
    issueDate: iso(issued),
    nextUpdate: iso(next),
    fmspc: Buffer.from(DEV_PLATFORM.fmspc).toString("hex").toUpperCase(),
    pceId: Buffer.from(DEV_PLATFORM.pceId).toString("hex"),
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tcbLevels: levels,
  });
  const qeLevels =
    (opts.qeStatus ?? "UpToDate") === "OutOfDate"
      ? [
          { tcb: { isvsvn: DEV_QE.isvSvn + 1 }, tcbDate: "2025-01-01T00:00:00Z", tcbStatus: "UpToDate" },
          { tcb: { isvsvn: DEV_QE.isvSvn }, tcbDate: "2024-01-01T00:00:00Z", tcbStatus: "OutOfDate", ...(opts.qeAdvisoryIds?.length ? { advisoryIDs: opts.qeAdvisoryIds } : {}) },
        ]
      : [{ tcb: { isvsvn: DEV_QE.isvSvn }, tcbDate: "2025-01-01T00:00:00Z", tcbStatus: opts.qeStatus ?? "UpToDate", ...(opts.qeAdvisoryIds?.length ? { advisoryIDs: opts.qeAdvisoryIds } : {}) }];
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").toUpperCase();
  const qeIdentity = JSON.stringify({
    id: "QE",
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
