/**
 * Nothing fetched or read from the cache is used unless it verifies: the pieces are the ones the
 * key asks for, and TCB info, QE identity, root CA CRL and PCK CRL all verify under one trust
 * anchor at the given time.
 */
import { equalBytes } from "../core/bytes.js";
import { CollateralError } from "../core/errors.js";
import { findLeaf, validatePath } from "../evidence/dcap/chain.js";
import { checkCollateral, type Collateral } from "../evidence/dcap/collateral.js";
import type { TrustAnchor } from "../evidence/dcap/roots.js";
import { verifySignedBy } from "../evidence/dcap/signatures.js";
import { caOfName, type CollateralKey } from "./key.js";

export interface Vouched {
  anchor: TrustAnchor;
  nextUpdate: Date;
}

function pckCrlProblem(col: Collateral, anchor: TrustAnchor, at: Date): string | null {
  const found = findLeaf(col.pckCrlIssuerChain);
  if (!found.ok) return `PCK CRL issuer chain: ${found.reason}`;
  const signer = found.value;
  const path = validatePath(signer, col.pckCrlIssuerChain, [anchor], at);
  if (!path.ok) return `PCK CRL issuer chain: ${path.reason}`;
  if (!equalBytes(col.pckCrl.issuer, signer.subject)) return `PCK CRL is issued by ${col.pckCrl.issuerText}, its issuer chain names ${signer.subjectText}`;
  if (!verifySignedBy(col.pckCrl, signer)) return `PCK CRL signature does not verify under ${signer.subjectText}`;
  return null;
}

/** Throws unless `col` is what `key` asks for and verifies under one of `anchors` at `at`. */
export function vouch(col: Collateral, key: CollateralKey, anchors: readonly TrustAnchor[], at: Date): Vouched {
  const t = col.tcbInfo.parsed;
  if (t.id !== key.tee) throw new CollateralError("COLLATERAL_MISMATCH", `TCB info is for ${t.id}, not ${key.tee}`);
  if (t.fmspc !== key.fmspc) throw new CollateralError("COLLATERAL_MISMATCH", `TCB info is for FMSPC ${t.fmspc}, not ${key.fmspc}`);
  const qeId = key.tee === "TDX" ? "TD_QE" : "QE";
  if (col.qeIdentity.parsed.id !== qeId) throw new CollateralError("COLLATERAL_MISMATCH", `QE identity is ${col.qeIdentity.parsed.id}, not ${qeId}`);
  if (caOfName(col.pckCrl.issuerText) !== key.ca) throw new CollateralError("COLLATERAL_MISMATCH", `PCK CRL is issued by ${col.pckCrl.issuerText}, not by the ${key.ca} CA`);
  const problems: string[] = [];
  for (const anchor of anchors) {
    const cc = checkCollateral(col, anchor, at);
    const problem = cc.signature.ok ? pckCrlProblem(col, anchor, at) : cc.signature.detail;
    if (problem === null) return { anchor, nextUpdate: cc.fresh.nextUpdate };
    problems.push(`under ${anchor.cert.subjectText}: ${problem}`);
  }
  throw new CollateralError("COLLATERAL_SIGNATURE", `collateral does not verify under any trust root (${problems.join("; ")})`);
}
