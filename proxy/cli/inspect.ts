/**
 * `inspect`: read a quote file (binary, hex or base64), verify it offline, render the verdict.
 */
import { readFile } from "node:fs/promises";
import { InputError } from "../core/errors.js";
import { pemBlocks } from "../evidence/asn1/pem.js";
import { verifyRaTlsCertificate, type RaTlsVerdict } from "../evidence/ratls/verify.js";
import type { QuoteFields, Verdict } from "../evidence/verdict.js";
import { tdAttributeNames } from "../evidence/measurement.js";
import { verifyQuote } from "../evidence/dcap/verify.js";

/** Quote files come as raw bytes, hex or base64 text; whitespace in text forms is ignored. */
export function decodeQuoteFile(buf: Uint8Array): Uint8Array {
  const text = Buffer.from(buf).toString("latin1").replace(/\s+/g, "");
  if (text.length > 0 && text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text)) return new Uint8Array(Buffer.from(text, "hex"));
  if (text.length > 0 && text.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(text)) return new Uint8Array(Buffer.from(text, "base64"));
  return buf;
}

/** ISO 8601 or Unix seconds. */
export function parseTime(s: string): Date {
  const d = /^\d+$/.test(s) ? new Date(Number(s) * 1000) : /^\d{4}-\d{2}-\d{2}/.test(s) ? new Date(s) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw new InputError("TIME_INVALID", `--at: "${s}" is neither ISO 8601 nor Unix seconds`);
  return d;
}

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new InputError("INPUT_UNREADABLE", `${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export interface InspectArgs {
  file: string;
  collateral?: string;
  at?: string;
  trustRoots: string[];
}

/**
 * A certificate (PEM, or DER: a SEQUENCE with a long-form length) rather than a quote (whose
 * first bytes are a little-endian version 3, 4 or 5).
 */
export function certificateIn(buf: Uint8Array): Uint8Array | null {
  const head = Buffer.from(buf.subarray(0, 64)).toString("latin1");
  if (head.includes("-----BEGIN")) {
    const blocks = pemBlocks(buf);
    if (blocks.length === 0) throw new InputError("INPUT_UNREADABLE", "PEM input holds no CERTIFICATE block");
    return blocks[0]!;
  }
  return buf[0] === 0x30 && (buf[1] === 0x82 || buf[1] === 0x83) ? buf : null;
}

export async function inspect(args: InspectArgs): Promise<Verdict | RaTlsVerdict> {
  const input = new Uint8Array(await readInput(args.file, "input file"));
  const trustRoots = await Promise.all(args.trustRoots.map(async (p) => (await readInput(p, "trust root")).toString("latin1")));
  const opts: Parameters<typeof verifyQuote>[1] = { trustRoots };
  if (args.collateral !== undefined) opts.collateral = args.collateral;
  if (args.at !== undefined) opts.at = parseTime(args.at);
  const cert = certificateIn(input);
  return cert ? verifyRaTlsCertificate(cert, opts) : verifyQuote(decodeQuoteFile(input), opts);
}

const ZERO = /^0*$/;

/**
 * A measurements[] entry that pins exactly this quote, as a policy file writes it. For a TD it
 * holds every RTMR and any non-zero owner register: a policy that drops RTMR3 (extended at run
 * time) does so knowingly.
 */
export function policyEntry(q: QuoteFields): string {
  if (q.teeType === "SGX") return `{ mrenclave: "${q.mrenclave}" }`;
  const regs: [string, string][] = [["mrtd", q.mrtd], ...q.rtmr.map((r, i): [string, string] => [`rtmr${i}`, r])];
  for (const k of ["mrconfigid", "mrowner", "mrownerconfig"] as const) if (!ZERO.test(q[k])) regs.push([k, q[k]]);
  return `{ ${regs.map(([k, v]) => `${k}: "${v}"`).join(", ")} }`;
}

/** The quote's rows: a TD's identity (the registers a policy pins) first, RTMRs one per row, attributes named. */
function quoteRows(q: QuoteFields): [string, unknown][] {
  const rest = (skip: string[]): [string, unknown][] => Object.entries(q).filter(([k]) => !skip.includes(k) && k !== "teeType" && k !== "version" && k !== "certDataType");
  if (q.teeType === "SGX") return rest([]);
  const names = tdAttributeNames(q.tdAttributes);
  const first: [string, unknown][] = [
    ["mrtd", q.mrtd],
    ...q.rtmr.map((r, i): [string, unknown] => [`rtmr${i}`, r]),
    ["mrconfigid", q.mrconfigid],
    ["mrowner", q.mrowner],
    ["mrownerconfig", q.mrownerconfig],
    ["tdAttributes", `${q.tdAttributes} (${names.length > 0 ? names.join(", ") : "none set"})`],
    ["debug", q.debug],
    ["teeTcbSvn", q.teeTcbSvn],
    ["mrseam", q.mrseam],
  ];
  return [...first, ...rest([...first.map(([k]) => k), "rtmr"])];
}

/**
 * The human report of a verdict: certificate, quote, platform, TCB, every check, and the verdict
 * line. `verify` shares it and names a passing verdict for what it also proves (the policy).
 */
export function renderVerdict(v: Verdict | RaTlsVerdict, file: string, passed = "the evidence verifies"): string {
  const out: string[] = [];
  const row = (k: string, val: unknown) =>
    out.push(
      `  ${k.padEnd(16)} ${Array.isArray(val) ? val.map((x) => (typeof x === "object" ? JSON.stringify(x) : x)).join(", ") || "(none)" : typeof val === "object" && val !== null ? JSON.stringify(val) : String(val)}`,
    );
  if ("certificate" in v && v.certificate) {
    out.push(`Certificate ${file}: ${v.certificate.subject}, ${v.certificate.key}`);
    row("valid", `${v.certificate.notBefore} – ${v.certificate.notAfter}`);
    for (const e of v.certificate.extensions) row("extension", `${e.oid}${e.critical ? " (critical)" : ""}: ${e.kind}`);
    if (v.binding) {
      row("spkiSha256", v.binding.spkiSha256);
      for (const [k, val] of Object.entries(v.binding.claims)) row(`claim ${k}`, val);
    }
  }
  if (v.quote) {
    out.push(`Quote${"certificate" in v ? " (from the certificate)" : ` ${file}`}: ${v.quote.teeType} quote v${v.quote.version}, certification data type ${v.quote.certDataType}`);
    for (const [k, val] of quoteRows(v.quote)) row(k, typeof val === "boolean" ? (val ? "yes" : "no") : val);
    row("policy entry", policyEntry(v.quote));
  } else {
    out.push(`Quote ${file}: does not parse`);
  }
  if (v.platform) {
    out.push("Platform (PCK certificate)");
    for (const [k, val] of Object.entries(v.platform)) row(k, val);
  }
  if (v.tcb) {
    out.push("TCB");
    for (const [k, val] of Object.entries(v.tcb)) row(k, val);
  } else {
    out.push("TCB: not evaluated (no collateral)");
  }
  out.push("Checks");
  for (const c of v.checks) out.push(`  ${c.ok ? "ok  " : "FAIL"} ${c.check.padEnd(22)} ${c.detail}`);
  out.push(`Verification time ${v.at}${v.dev ? "; DEV root: this is not Intel-rooted evidence" : ""}`);
  out.push(v.ok ? `Verdict: ${passed}` : `Verdict: REJECTED at ${v.failed?.check}: ${v.failed?.reason}`);
  return out.join("\n") + "\n";
}
