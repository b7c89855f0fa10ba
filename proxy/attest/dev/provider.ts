/**
 * The dev attestation provider: DCAP quote v3 (SGX) or v4 (TDX, `tee: "tdx"`, see tdx-quote.ts)
 * in Intel's exact layout, signed by the dev PKI, so that the evidence core verifies it unchanged
 * once the dev root is passed as a trust root.
 *
 * - Report body: DEBUG set (a dev enclave's memory is not protected, and says so); MRSIGNER is
 *   SHA-256 of the dev signer key; MRENCLAVE stands for the code it claims to be (devMrenclave).
 * - Attestation key signs header ‖ body; the QE report binds it (report data =
 *   SHA-256(attestation key ‖ QE auth data) ‖ 0³²) and is signed by the PCK leaf key.
 * - Certification data type 5: PCK leaf, PCK CA and root, PEM, NUL-terminated like Intel's; in
 *   a v4 quote the QE section travels inside certification data type 6, as real TDX quotes carry it.
 */
import { createHash, createPublicKey, sign, type KeyObject } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { concatBytes } from "../../core/bytes.js";
import { InputError } from "../../core/errors.js";
import { HEADER_BYTES, SGX_REPORT_BYTES } from "../../evidence/dcap/quote.js";
import { DEV_QE_IDENTITY } from "../../evidence/dcap/qe-known.js";
import { DEFAULT_DEV_DIR, DEV_PLATFORM, openDevPki, type DevPki } from "./pki.js";
import { devTdMeasurements, tdReportBody, tdxHeader, type DevTdMeasurements } from "./tdx-quote.js";
import { checkReportData, type AttestationProvider } from "../provider.js";

/** Intel's QE vendor id, as real quotes carry it. */
const QE_VENDOR_ID = Uint8Array.from(Buffer.from("939a7233f79c4ca9940a0db3957f0607", "hex"));
/** The dev quoting enclave's identity (matched by dev QE identity collateral). */
export const DEV_QE = {
  /** What the verifier expects of a quote under a dev root (evidence/dcap/qe-known.ts). */
  mrsigner: DEV_QE_IDENTITY.mrsigner,
  isvProdId: DEV_QE_IDENTITY.isvProdId,
  isvSvn: 8,
  /** FLAGS INIT | MODE64BIT | PROVISIONKEY, XFRM x87 | SSE. */
  attributes: Uint8Array.from(Buffer.from("15000000000000000300000000000000", "hex")),
  miscSelect: 0,
} as const;
const QE_SVN = 8;
/** FLAGS INIT | DEBUG | MODE64BIT, XFRM x87 | SSE | AVX | … as a typical debug enclave. */
const DEV_ENCLAVE_ATTRIBUTES = Uint8Array.from(Buffer.from("0700000000000000e700000000000000", "hex"));

export interface DevProviderOptions {
  dir?: string;
  /** Quote as an SGX enclave (v3, the default) or a TDX trust domain (v4). */
  tee?: "sgx" | "tdx";
  /** 32-byte MRENCLAVE; default: devMrenclave over the proxy's own compiled code. */
  mrenclave?: Uint8Array;
  /** TDX: the TD's measurements (48 bytes each); default MRTD: devMrtd over the proxy's compiled code. */
  td?: Partial<DevTdMeasurements>;
  isvProdId?: number;
  isvSvn?: number;
  /** Called once at open with the warning every dev start must show. */
  warn?: (message: string) => void;
}

/**
 * Dev MRENCLAVE: SHA-256 over a domain tag and, for each file of the code it stands for (sorted
 * by path), the relative path, a NUL and the file's SHA-256. Real MRENCLAVE measures enclave
 * pages; this measures the same thing at file granularity, so a code change changes it.
 */
export function devMrenclave(root: string): Promise<Uint8Array> {
  return codeDigest(root, "sha256", "attestable-mcp dev MRENCLAVE v1\0");
}

/** Dev MRTD: as devMrenclave, with SHA-384 (a TD measurement's size) and its own domain tag. */
export function devMrtd(root: string): Promise<Uint8Array> {
  return codeDigest(root, "sha384", "attestable-mcp dev MRTD v1\0");
}

async function codeDigest(root: string, algorithm: "sha256" | "sha384", tag: string): Promise<Uint8Array> {
  const files: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && p.endsWith(".js")) files.push(p);
    }
  };
  await walk(root);
  files.sort();
  const h = createHash(algorithm).update(tag);
  for (const f of files)
    h.update(relative(root, f))
      .update("\0")
      .update(
        createHash("sha256")
          .update(await readFile(f))
          .digest(),
      );
  return new Uint8Array(h.digest());
}

function u16(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, v >> 8);
}

function reportBody(p: {
  cpuSvn: Uint8Array;
  miscSelect: number;
  attributes: Uint8Array;
  mrenclave: Uint8Array;
  mrsigner: Uint8Array;
  isvProdId: number;
  isvSvn: number;
  reportData: Uint8Array;
}): Uint8Array {
  const b = new Uint8Array(SGX_REPORT_BYTES);
  b.set(p.cpuSvn, 0);
  new DataView(b.buffer).setUint32(16, p.miscSelect, true);
  b.set(p.attributes, 48);
  b.set(p.mrenclave, 64);
  b.set(p.mrsigner, 128);
  b.set(u16(p.isvProdId), 256);
  b.set(u16(p.isvSvn), 258);
  b.set(p.reportData, 320);
  return b;
}

const rawSign = (key: KeyObject, data: Uint8Array) => new Uint8Array(sign("sha256", data, { key, dsaEncoding: "ieee-p1363" }));

/** Certification data: type (u16), size (u32), bytes. */
function certificationData(type: number, data: Uint8Array): Uint8Array {
  const head = new Uint8Array(6);
  head.set(u16(type), 0);
  new DataView(head.buffer).setUint32(2, data.length, true);
  return concatBytes(head, data);
}

/** Raw x‖y of a P-256 key. */
function rawPublicKey(key: KeyObject): Uint8Array {
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return concatBytes(Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url"));
}

export class DevProvider implements AttestationProvider {
  readonly name = "dev";
  readonly dev = true;
  private readonly attestationKeyRaw: Uint8Array;
  /** QE report, its PCK signature, QE auth data and certification data type 5, as one section. */
  private readonly qeSection: Uint8Array;
  private readonly qeAuthData = Uint8Array.from({ length: 32 }, (_, i) => i);

  private constructor(
    readonly pki: DevPki,
    readonly tee: "sgx" | "tdx",
    readonly mrenclave: Uint8Array,
    /** The TD's measurements when `tee` is tdx, else null. */
    readonly td: DevTdMeasurements | null,
    readonly isvProdId: number,
    readonly isvSvn: number,
  ) {
    this.attestationKeyRaw = rawPublicKey(pki.attestationKey);
    // The QE report and its PCK signature are the same for every quote of this attestation key.
    const qeReport = reportBody({
      cpuSvn: Uint8Array.from(DEV_PLATFORM.tcbComponents),
      miscSelect: DEV_QE.miscSelect,
      attributes: DEV_QE.attributes,
      mrenclave: new Uint8Array(createHash("sha256").update("attestable-mcp dev QE code").digest()),
      mrsigner: DEV_QE.mrsigner,
      isvProdId: DEV_QE.isvProdId,
      isvSvn: DEV_QE.isvSvn,
      reportData: concatBytes(createHash("sha256").update(this.attestationKeyRaw).update(this.qeAuthData).digest(), new Uint8Array(32)),
    });
    const certData = concatBytes(Buffer.from(pki.pck.pem + pki.pckCa.pem + pki.root.pem, "latin1"), Uint8Array.of(0));
    this.qeSection = concatBytes(qeReport, rawSign(pki.pck.key, qeReport), u16(this.qeAuthData.length), this.qeAuthData, certificationData(5, certData));
  }

  static async open(opts: DevProviderOptions = {}): Promise<DevProvider> {
    const tee = opts.tee ?? "sgx";
    if (tee !== "sgx" && tee !== "tdx") throw new InputError("DEV_OPTIONS_INVALID", `tee must be sgx or tdx, got ${String(tee)}`);
    const pki = await openDevPki(opts.dir ?? DEFAULT_DEV_DIR);
    const code = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "../..");
    const mrenclave = opts.mrenclave ?? (tee === "sgx" ? await devMrenclave(code) : new Uint8Array(32));
    if (mrenclave.length !== 32) throw new InputError("DEV_OPTIONS_INVALID", "mrenclave must be 32 bytes");
    const td = tee === "tdx" ? devTdMeasurements(opts.td?.mrtd ?? (await devMrtd(code)), opts.td) : null;
    (opts.warn ?? ((m) => process.stderr.write(`attestable-mcp: WARNING: ${m}\n`)))(
      `dev attestation provider: quotes are signed by the local dev PKI in ${pki.dir}, not by Intel, and the ${tee === "tdx" ? "trust domain" : "enclave"} is marked DEBUG; clients trust them only with --trust-root ${join(pki.dir, "root.pem")}. Never use this in production.`,
    );
    return new DevProvider(pki, tee, mrenclave, td, opts.isvProdId ?? 0, opts.isvSvn ?? 0);
  }

  get mrsigner(): Uint8Array {
    return this.pki.mrsigner;
  }

  /** The dev root certificate (PEM) that verifiers must be given as a trust root. */
  get rootPem(): string {
    return this.pki.root.pem;
  }

  async quote(reportData: Uint8Array): Promise<Uint8Array> {
    checkReportData(reportData);
    if (this.td) {
      const signed = concatBytes(tdxHeader(QE_VENDOR_ID), tdReportBody(this.td, reportData));
      return this.assemble(signed, certificationData(6, this.qeSection));
    }
    const header = new Uint8Array(HEADER_BYTES);
    header.set(u16(3), 0); // version
    header.set(u16(2), 2); // ECDSA-256-with-P-256
    header.set(u16(QE_SVN), 8);
    header.set(u16(DEV_PLATFORM.pceSvn), 10);
    header.set(QE_VENDOR_ID, 12);
    const body = reportBody({
      cpuSvn: Uint8Array.from(DEV_PLATFORM.tcbComponents),
      miscSelect: 0,
      attributes: DEV_ENCLAVE_ATTRIBUTES,
      mrenclave: this.mrenclave,
      mrsigner: this.pki.mrsigner,
      isvProdId: this.isvProdId,
      isvSvn: this.isvSvn,
      reportData,
    });
    return this.assemble(concatBytes(header, body), this.qeSection);
  }

  /** Header ‖ body, then the signature data: the attestation key's signature, the key, the QE section. */
  private assemble(signed: Uint8Array, qe: Uint8Array): Uint8Array {
    const sigData = concatBytes(rawSign(this.pki.attestationKey, signed), this.attestationKeyRaw, qe);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, sigData.length, true);
    return concatBytes(signed, len, sigData);
  }
}
