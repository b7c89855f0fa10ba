/** Collateral in dcap-qvl's shape, built from a PCS-layout directory (for the differential oracle). */
import { partsFromPcsDirectory } from "../../proxy/evidence/collateral-files.js";

export interface QvlCollateral {
  pck_crl_issuer_chain: string;
  root_ca_crl: string;
  pck_crl: string;
  tcb_info_issuer_chain: string;
  tcb_info: string;
  tcb_info_signature: string;
  qe_identity_issuer_chain: string;
  qe_identity: string;
  qe_identity_signature: string;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export async function qvlCollateralFromDir(dir: string): Promise<QvlCollateral> {
  const p = await partsFromPcsDirectory(dir);
  return {
    pck_crl_issuer_chain: p.pckCrlIssuerChain,
    root_ca_crl: hex(p.rootCaCrl),
    pck_crl: hex(p.pckCrl),
    tcb_info_issuer_chain: p.tcbInfoIssuerChain,
    tcb_info: p.tcbInfo,
    tcb_info_signature: hex(p.tcbInfoSignature),
    qe_identity_issuer_chain: p.qeIdentityIssuerChain,
    qe_identity: p.qeIdentity,
    qe_identity_signature: hex(p.qeIdentitySignature),
  };
}
