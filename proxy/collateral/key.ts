/**
 * Which collateral a quote needs: its TEE, the FMSPC in its PCK certificate, and the CA that
 * issued that certificate (processor or platform). One key names one set of four pieces.
 */
import { toHex } from "../core/bytes.js";
import { InputError } from "../core/errors.js";
import { parsePckExtension } from "../evidence/asn1/sgx-extension.js";
import { pckPath, type PckPath } from "../evidence/dcap/quote-checks.js";
import { parseQuote } from "../evidence/dcap/quote.js";
import { trustAnchors } from "../evidence/dcap/roots.js";

export interface CollateralKey {
  tee: "SGX" | "TDX";
  /** 12 hex digits (6 bytes); normalised to lower case. */
  fmspc: string;
  /** The CA that issued the PCK certificate. */
  ca: "processor" | "platform";
}

/** `key` checked and normalised (FMSPC in lower case). */
export function checkKey(key: CollateralKey): CollateralKey {
  const k = key as Partial<Record<keyof CollateralKey, unknown>> | null;
  if (k === null || typeof k !== "object") throw new InputError("COLLATERAL_KEY_INVALID", "collateral key must be an object { tee, fmspc, ca }");
  if (k.tee !== "SGX" && k.tee !== "TDX") throw new InputError("COLLATERAL_KEY_INVALID", `collateral key: tee must be "SGX" or "TDX", got ${JSON.stringify(k.tee)}`);
  if (typeof k.fmspc !== "string" || !/^[0-9a-fA-F]{12}$/.test(k.fmspc)) {
    throw new InputError("COLLATERAL_KEY_INVALID", `collateral key: fmspc must be 12 hex digits, got ${JSON.stringify(k.fmspc)}`);
  }
  if (k.ca !== "processor" && k.ca !== "platform") throw new InputError("COLLATERAL_KEY_INVALID", `collateral key: ca must be "processor" or "platform", got ${JSON.stringify(k.ca)}`);
  return { tee: k.tee, fmspc: k.fmspc.toLowerCase(), ca: k.ca };
}

/** The cache's name for a key, e.g. "sgx-00a067110000-processor". */
export const keyId = (k: CollateralKey): string => `${k.tee.toLowerCase()}-${k.fmspc}-${k.ca}`;
export const keyLabel = (k: CollateralKey): string => `${k.tee} FMSPC ${k.fmspc} (${k.ca} CA)`;

/** "processor" / "platform" from a CA's name: its CN ends in "Processor CA" / "Platform CA" (Intel's and the dev PKI's). */
export function caOfName(nameText: string): "processor" | "platform" | null {
  const cn = /(?:^|[,+])CN=((?:\\.|[^,+\\])*)/.exec(nameText)?.[1];
  if (cn === undefined) return null;
  if (/\bProcessor CA$/i.test(cn)) return "processor";
  if (/\bPlatform CA$/i.test(cn)) return "platform";
  return null;
}

/**
 * The collateral a quote needs. The PCK chain must lead to a trusted root at `at` (Intel's, or one
 * of `trustRoots`): collateral is never fetched for a chain nobody vouches for.
 */
export function collateralKeyOf(quote: Uint8Array, trustRoots: (string | Uint8Array)[] = [], at: Date = new Date()): CollateralKey {
  const q = parseQuote(quote);
  return collateralKeyOfPath(q.teeType, pckPath(q, trustAnchors(trustRoots), at));
}

/** collateralKeyOf for a quote already parsed, whose PCK chain was judged (an appraisal's). */
export function collateralKeyOfPath(tee: CollateralKey["tee"], pck: PckPath): CollateralKey {
  if (pck.chain === null) throw new InputError("PCK_CHAIN_MISSING", pck.certs.reason);
  if (!pck.chain.ok) throw new InputError("PCK_CHAIN_UNTRUSTED", `PCK chain: ${pck.chain.reason}`);
  const leaf = pck.chain.value.path[0]!;
  const ext = parsePckExtension(leaf);
  const ca = caOfName(leaf.issuerText);
  if (ca === null) throw new InputError("PCK_CA_UNKNOWN", `PCK certificate issuer ${leaf.issuerText} is neither a Processor CA nor a Platform CA`);
  return { tee, fmspc: toHex(ext.fmspc), ca };
}
