/**
 * Collateral from disk or from an object: a directory in the PCS layout
 * (`tcb-info.json`, `qe-identity.json`, `*-issuer-chain.pem`, `pck-crl.der`, `root-ca-crl.der`),
 * a dcap-qvl single-file JSON, or the same JSON already parsed. The only I/O of evidence/.
 * Collateral read from a path is remembered by file identity (collateral-memo.ts).
 */
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fromHex } from "../../core/bytes.js";
import { prepareCollateral, splitSignedBody, type Collateral, type CollateralParts } from "./collateral.js";
import { CollateralError } from "../../core/errors.js";
import { CollateralMemo, identityOf, type FileIdentity } from "./collateral-memo.js";

/** The file system calls collateral loading makes; tests count them. */
export interface CollateralFs {
  stat(path: string): Promise<FileIdentity & { isDirectory(): boolean }>;
  readFile(path: string): Promise<Buffer>;
}

// stat is synchronous: a remembered directory is checked on every call, and eight stats of a few
// microseconds each cost far less than eight round trips through libuv's thread pool (`npm run
// bench:verify` on a loaded machine: 0.91 ms per remembered call with asynchronous stats, 0.42 ms
// with these, against 0.34–0.37 ms with a prepared Collateral).
const NODE_FS: CollateralFs = { stat: async (p) => statSync(p), readFile: (p) => readFile(p) };

const PCS_FILES = ["tcb-info.json", "qe-identity.json", "tcb-info-issuer-chain.pem", "qe-identity-issuer-chain.pem", "pck-crl-issuer-chain.pem", "pck-crl.der", "root-ca-crl.der"] as const;

/** The dcap-qvl `QuoteCollateralV3` JSON shape. */
export interface DcapQvlCollateral {
  pck_crl_issuer_chain: string;
  root_ca_crl: string | number[];
  pck_crl: string | number[];
  tcb_info_issuer_chain: string;
  tcb_info: string;
  tcb_info_signature: string | number[];
  qe_identity_issuer_chain: string;
  qe_identity: string;
  qe_identity_signature: string | number[];
}

const QVL_KEYS: (keyof DcapQvlCollateral)[] = [
  "pck_crl_issuer_chain",
  "root_ca_crl",
  "pck_crl",
  "tcb_info_issuer_chain",
  "tcb_info",
  "tcb_info_signature",
  "qe_identity_issuer_chain",
  "qe_identity",
  "qe_identity_signature",
];

function qvlBytes(v: unknown, key: string): Uint8Array {
  if (typeof v === "string" && v.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(v)) return fromHex(v);
  if (Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)) return Uint8Array.from(v as number[]);
  throw new CollateralError("COLLATERAL_INVALID", `dcap-qvl collateral: "${key}" must be hex or an array of bytes`);
}

function qvlString(v: unknown, key: string): string {
  if (typeof v !== "string") throw new CollateralError("COLLATERAL_INVALID", `dcap-qvl collateral: "${key}" must be a string`);
  return v;
}

export function partsFromDcapQvl(o: Record<string, unknown>): CollateralParts {
  for (const k of QVL_KEYS) {
    if (!(k in o)) throw new CollateralError("COLLATERAL_MISSING", `dcap-qvl collateral: missing "${k}"`);
  }
  return {
    tcbInfo: qvlString(o.tcb_info, "tcb_info"),
    tcbInfoSignature: qvlBytes(o.tcb_info_signature, "tcb_info_signature"),
    tcbInfoIssuerChain: qvlString(o.tcb_info_issuer_chain, "tcb_info_issuer_chain"),
    qeIdentity: qvlString(o.qe_identity, "qe_identity"),
    qeIdentitySignature: qvlBytes(o.qe_identity_signature, "qe_identity_signature"),
    qeIdentityIssuerChain: qvlString(o.qe_identity_issuer_chain, "qe_identity_issuer_chain"),
    pckCrl: qvlBytes(o.pck_crl, "pck_crl"),
    pckCrlIssuerChain: qvlString(o.pck_crl_issuer_chain, "pck_crl_issuer_chain"),
    rootCaCrl: qvlBytes(o.root_ca_crl, "root_ca_crl"),
  };
}

function unreadable(dir: string, name: string, e: unknown): CollateralError {
  return new CollateralError("COLLATERAL_UNREADABLE", `collateral directory ${dir}: cannot read ${name} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
}

async function readIn(fs: CollateralFs, dir: string, name: string): Promise<Buffer> {
  try {
    return await fs.readFile(join(dir, name));
  } catch (e) {
    throw unreadable(dir, name, e);
  }
}

export async function partsFromPcsDirectory(dir: string, fs: CollateralFs = NODE_FS): Promise<CollateralParts> {
  const [tcbBody, qeBody, tcbChain, qeChain, crlChain, pckCrl, rootCrl] = await Promise.all(PCS_FILES.map((n) => readIn(fs, dir, n)));
  const tcb = splitSignedBody(tcbBody!.toString("utf8"), "tcbInfo", `${dir}/tcb-info.json`);
  const qe = splitSignedBody(qeBody!.toString("utf8"), "enclaveIdentity", `${dir}/qe-identity.json`);
  return {
    tcbInfo: tcb.text,
    tcbInfoSignature: tcb.signature,
    tcbInfoIssuerChain: tcbChain!.toString("latin1"),
    qeIdentity: qe.text,
    qeIdentitySignature: qe.signature,
    qeIdentityIssuerChain: qeChain!.toString("latin1"),
    pckCrl: new Uint8Array(pckCrl!),
    pckCrlIssuerChain: crlChain!.toString("latin1"),
    rootCaCrl: new Uint8Array(rootCrl!),
  };
}

function isPrepared(o: object): o is Collateral {
  return "tcbInfo" in o && "qeIdentity" in o && "pckCrl" in o && typeof (o as Collateral).tcbInfo === "object";
}

/** Where loadCollateral reads from and remembers into. */
export interface CollateralIo {
  fs: CollateralFs;
  memo: CollateralMemo;
}

const DEFAULT_IO: CollateralIo = { fs: NODE_FS, memo: new CollateralMemo() };

/** Forget every remembered collateral (benchmarks, to time the first call). */
export function clearCollateralMemo(): void {
  DEFAULT_IO.memo.clear();
}

async function statPcsFiles(fs: CollateralFs, dir: string): Promise<FileIdentity[]> {
  return Promise.all(
    PCS_FILES.map(async (n) => {
      try {
        return await fs.stat(join(dir, n));
      } catch (e) {
        throw unreadable(dir, n, e);
      }
    }),
  );
}

function parseQvlFile(source: string, text: string): Collateral {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new CollateralError("COLLATERAL_JSON", `collateral ${source}: not a directory and not JSON (${(e as Error).message})`);
  }
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new CollateralError("COLLATERAL_JSON", `collateral ${source}: expected a JSON object`);
  return prepareCollateral(partsFromDcapQvl(o as Record<string, unknown>));
}

/** A path: stat what would be read, and read and prepare only if that is not what was prepared last. */
export async function loadCollateralPath(source: string, io: CollateralIo): Promise<Collateral> {
  let top: FileIdentity & { isDirectory(): boolean };
  try {
    top = await io.fs.stat(source);
  } catch (e) {
    throw new CollateralError("COLLATERAL_UNREADABLE", `collateral ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const isDir = top.isDirectory();
  const identity = identityOf(isDir ? await statPcsFiles(io.fs, source) : [top]);
  const key = io.memo.key(source);
  const known = io.memo.get(key, identity);
  if (known !== undefined) return known;
  let col: Collateral;
  if (isDir) col = prepareCollateral(await partsFromPcsDirectory(source, io.fs));
  else {
    let bytes: Buffer;
    try {
      bytes = await io.fs.readFile(source);
    } catch (e) {
      throw new CollateralError("COLLATERAL_UNREADABLE", `collateral ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    col = parseQvlFile(source, bytes.toString("utf8"));
  }
  io.memo.set(key, identity, col);
  return col;
}

/**
 * Load and prepare collateral. A string is a path: a directory in the PCS layout or a dcap-qvl
 * JSON file, remembered while its files keep their identity. An object is a dcap-qvl collateral
 * object or an already prepared Collateral.
 */
export async function loadCollateral(source: string | object): Promise<Collateral> {
  if (typeof source === "object" && source !== null) {
    if (isPrepared(source)) return source;
    return prepareCollateral(partsFromDcapQvl(source as Record<string, unknown>));
  }
  if (typeof source !== "string") throw new CollateralError("COLLATERAL_INVALID", "collateral must be a path or an object");
  return loadCollateralPath(source, DEFAULT_IO);
}
