/**
 * The dev PKI: a stand-in for Intel's, created once in a dev directory and reused after.
 *
 *   dev root CA ── dev PCK CA ── PCK leaf (Intel's SGX extension: PPID, TCB, PCE-ID, FMSPC, type)
 *              └── dev TCB signing certificate (signs dev TCB info and QE identity)
 *   attestation key (signs quotes; bound by the QE report), enclave signer key (its SHA-256 is
 *   the dev MRSIGNER)
 *
 * Keys are PKCS#8 PEM files with mode 0600 in a 0700 directory; `root.pem` is what a client
 * passes as a trust root. The directory is created whole or not at all: it is built under a
 * temporary name and renamed, so two processes starting together end up with one PKI.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pemBlocks } from "../../evidence/asn1/pem.js";
import { buildSgxExtension } from "../build/sgx-extension.js";
import { parseCertificate, type Certificate } from "../../evidence/asn1/x509.js";
import { authorityKeyIdentifier, basicConstraints, buildCertificate, derToPem, keyIdentifier, keyUsage, subjectKeyIdentifier, type Name } from "../build/x509.js";
import { AttestationError } from "../provider.js";

export const DEFAULT_DEV_DIR = ".attestable-mcp/dev";

/** Platform facts the dev PCK certificate states (and dev TCB info matches). */
export const DEV_PLATFORM = {
  fmspc: Uint8Array.from([0xde, 0x70, 0x00, 0x00, 0x00, 0x00]),
  pceId: Uint8Array.of(0, 0),
  pceSvn: 13,
  tcbComponents: [4, 4, 3, 3, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  sgxType: 0,
} as const;

export const ROOT_NAME: Name = [
  ["CN", "attestable-mcp DEV Root CA"],
  ["O", "attestable-mcp (development only, not Intel)"],
];
export const PCK_CA_NAME: Name = [
  ["CN", "attestable-mcp DEV PCK Processor CA"],
  ["O", "attestable-mcp (development only, not Intel)"],
];
const PCK_NAME: Name = [
  ["CN", "attestable-mcp DEV PCK Certificate"],
  ["O", "attestable-mcp (development only, not Intel)"],
];
const TCB_SIGNING_NAME: Name = [
  ["CN", "attestable-mcp DEV TCB Signing"],
  ["O", "attestable-mcp (development only, not Intel)"],
];

const YEAR = 365 * 24 * 3600 * 1000;

export interface DevPki {
  dir: string;
  root: { cert: Certificate; pem: string; key: KeyObject };
  pckCa: { cert: Certificate; pem: string; key: KeyObject };
  pck: { cert: Certificate; pem: string; key: KeyObject };
  tcbSigning: { cert: Certificate; pem: string; key: KeyObject };
  attestationKey: KeyObject;
  signerKey: KeyObject;
  /** SHA-256 of the enclave signer key's SPKI DER: the dev MRSIGNER. */
  mrsigner: Uint8Array;
}

const FILES = ["root.pem", "root.key", "pck-ca.pem", "pck-ca.key", "pck.pem", "pck.key", "tcb-signing.pem", "tcb-signing.key", "attestation.key", "signer.key"] as const;

const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
const keyPem = (k: KeyObject) => k.export({ format: "pem", type: "pkcs8" }).toString();

function issue(
  subject: Name,
  issuer: Name,
  publicKey: KeyObject,
  signingKey: KeyObject,
  issuerKey: KeyObject,
  now: Date,
  years: number,
  extra: Parameters<typeof buildCertificate>[0]["extensions"] = [],
): string {
  const der = buildCertificate({
    subject,
    issuer,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + years * YEAR),
    publicKey,
    signingKey,
    extensions: [subjectKeyIdentifier(publicKey), authorityKeyIdentifier(keyIdentifier(issuerKey)), ...extra],
  });
  return derToPem(der);
}

/** Build every file of a new dev PKI (in memory). */
function generate(now: Date): Map<(typeof FILES)[number], string> {
  const root = p256();
  const pckCa = p256();
  const pck = p256();
  const tcb = p256();
  const caUsage = keyUsage({ keyCertSign: true, cRLSign: true });
  const files = new Map<(typeof FILES)[number], string>();
  files.set("root.key", keyPem(root.privateKey));
  files.set("root.pem", issue(ROOT_NAME, ROOT_NAME, root.publicKey, root.privateKey, root.publicKey, now, 20, [basicConstraints({ ca: true, pathLen: 1 }), caUsage]));
  files.set("pck-ca.key", keyPem(pckCa.privateKey));
  files.set("pck-ca.pem", issue(PCK_CA_NAME, ROOT_NAME, pckCa.publicKey, root.privateKey, root.publicKey, now, 15, [basicConstraints({ ca: true, pathLen: 0 }), caUsage]));
  files.set("pck.key", keyPem(pck.privateKey));
  files.set(
    "pck.pem",
    issue(PCK_NAME, PCK_CA_NAME, pck.publicKey, pckCa.privateKey, pckCa.publicKey, now, 7, [
      basicConstraints({ ca: false }),
      keyUsage({ digitalSignature: true, nonRepudiation: true }),
      buildSgxExtension({
        ppid: new Uint8Array(randomBytes(16)),
        tcbComponents: [...DEV_PLATFORM.tcbComponents],
        pceSvn: DEV_PLATFORM.pceSvn,
        cpuSvn: Uint8Array.from(DEV_PLATFORM.tcbComponents),
        pceId: DEV_PLATFORM.pceId,
        fmspc: DEV_PLATFORM.fmspc,
        sgxType: DEV_PLATFORM.sgxType,
      }),
    ]),
  );
  files.set("tcb-signing.key", keyPem(tcb.privateKey));
  files.set(
    "tcb-signing.pem",
    issue(TCB_SIGNING_NAME, ROOT_NAME, tcb.publicKey, root.privateKey, root.publicKey, now, 7, [basicConstraints({ ca: false }), keyUsage({ digitalSignature: true, nonRepudiation: true })]),
  );
  files.set("attestation.key", keyPem(p256().privateKey));
  files.set("signer.key", keyPem(p256().privateKey));
  return files;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function create(dir: string, now: Date): Promise<void> {
  await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await mkdir(tmp, { mode: 0o700 });
  try {
    for (const [name, text] of generate(now)) await writeFile(join(tmp, name), text, { mode: name.endsWith(".key") ? 0o600 : 0o644 });
    try {
      await rename(tmp, dir);
    } catch (e) {
      // Another process made it first: use theirs.
      if (!(await exists(join(dir, "root.pem")))) throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function load(dir: string): Promise<DevPki> {
  const read = async (name: (typeof FILES)[number]) => {
    try {
      return await readFile(join(dir, name), "utf8");
    } catch (e) {
      throw new AttestationError("DEV_PKI_INCOMPLETE", `dev PKI ${dir}: ${name} is missing or unreadable (${(e as NodeJS.ErrnoException).code}); remove the directory to create a new dev PKI`);
    }
  };
  const cert = async (name: "root" | "pck-ca" | "pck" | "tcb-signing") => {
    const pem = await read(`${name}.pem`);
    const key = createPrivateKey(await read(`${name}.key`));
    const der = pemBlocks(pem)[0];
    if (!der) throw new AttestationError("DEV_PKI_INCOMPLETE", `dev PKI ${dir}: ${name}.pem holds no certificate`);
    return { cert: parseCertificate(der), pem, key };
  };
  const signerKey = createPrivateKey(await read("signer.key"));
  return {
    dir,
    root: await cert("root"),
    pckCa: await cert("pck-ca"),
    pck: await cert("pck"),
    tcbSigning: await cert("tcb-signing"),
    attestationKey: createPrivateKey(await read("attestation.key")),
    signerKey,
    mrsigner: new Uint8Array(
      createHash("sha256")
        .update(createPublicKey(signerKey).export({ format: "der", type: "spki" }))
        .digest(),
    ),
  };
}

/** Load the dev PKI in `dir`, creating it on first use. */
export async function openDevPki(dir = DEFAULT_DEV_DIR, now = new Date()): Promise<DevPki> {
  if (!(await exists(join(dir, "root.pem")))) await create(dir, now);
  return load(dir);
}
