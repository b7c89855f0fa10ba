/**
 * The PCCS / Intel PCS API v4 over HTTP: where each piece is fetched, and how an answer is read
 * (bounded bodies, percent-encoded issuer chains, CRLs as DER, PEM or hex). Every failure is a
 * CollateralError with its own code; the URL rules are InputErrors.
 */
import { fromHex } from "../core/bytes.js";
import { AttestableMcpError, CollateralError, InputError } from "../core/errors.js";
import { isLoopback } from "../core/schema.js";
import { pemBlocks } from "../evidence/asn1/pem.js";
import { INTEL_PCS_URL } from "../evidence/policy.js";
import { checkKey, type CollateralKey } from "./key.js";

export { INTEL_PCS_URL };
/** The CRL distribution point named in Intel's SGX Root CA certificate. */
export const INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
export const PCCS_MAX_BODY_BYTES = 1024 * 1024;

export interface CollateralUrls {
  tcbInfo: string;
  qeIdentity: string;
  pckCrl: string;
  rootCaCrl: string;
}

/** Parse `url` and require https, or http to a loopback host. */
export function checkedUrl(url: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InputError("PCCS_URL_INVALID", `${what} ${JSON.stringify(url)} is not a URL`);
  }
  if (u.username || u.password) throw new InputError("PCCS_URL_INVALID", `${what} ${u.origin}…: credentials in the URL are not supported`);
  if (u.protocol === "http:") {
    if (!isLoopback(u.hostname)) {
      throw new InputError("PCCS_URL_INSECURE", `${what} ${url}: plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost); use https`);
    }
  } else if (u.protocol !== "https:") {
    throw new InputError("PCCS_URL_INVALID", `${what} ${url}: scheme ${u.protocol} is not supported (https, or http to a loopback host)`);
  }
  return u;
}

/**
 * The service base URL, ending in "/", without a trailing "sgx|tdx/certification/v4".
 * Any other path (a PCCS behind a reverse proxy at /pccs/) is kept.
 */
export function normalisePccsUrl(url: string): string {
  const u = checkedUrl(url, "PCCS URL");
  if (u.search || u.hash) throw new InputError("PCCS_URL_INVALID", `PCCS URL ${url}: a query or fragment is not supported`);
  let path = u.pathname.replace(/\/+$/, "");
  const api = /\/(sgx|tdx)\/certification\/(v\d+)$/i.exec(path);
  if (api) {
    if (api[2]!.toLowerCase() !== "v4") throw new InputError("PCCS_URL_INVALID", `PCCS URL ${url}: API ${api[2]} is not supported (v4 is)`);
    path = path.slice(0, api.index);
  }
  return `${u.origin}${path}/`;
}

function isIntelPcs(base: string): boolean {
  const host = new URL(base).hostname.toLowerCase();
  return host === "trustedservices.intel.com" || host.endsWith(".trustedservices.intel.com");
}

/** The four URLs fetched for `key` from the normalised `base`. */
export function collateralUrls(base: string, key: CollateralKey, rootCaCrlUrl?: string): CollateralUrls {
  const k = checkKey(key);
  const b = normalisePccsUrl(base);
  const tee = k.tee === "TDX" ? "tdx" : "sgx";
  return {
    tcbInfo: `${b}${tee}/certification/v4/tcb?fmspc=${k.fmspc.toUpperCase()}`,
    qeIdentity: `${b}${tee}/certification/v4/qe/identity`,
    pckCrl: `${b}sgx/certification/v4/pckcrl?ca=${k.ca}&encoding=der`,
    rootCaCrl: rootCaCrlUrl !== undefined ? checkedUrl(rootCaCrlUrl, "root CA CRL URL").href : isIntelPcs(b) ? INTEL_ROOT_CA_CRL_URL : `${b}sgx/certification/v4/rootcacrl`,
  };
}

export interface HttpAnswer {
  url: string;
  headers: Headers;
  body: Uint8Array;
}

/** What a failed request becomes: our own CollateralError as it is, a timeout, or the network's error. */
export function networkError(e: unknown, url: string, timeoutMs: number): CollateralError {
  if (e instanceof CollateralError) return e;
  const err = e as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } } | undefined;
  if (err?.name === "TimeoutError" || err?.name === "AbortError") {
    return new CollateralError("PCCS_TIMEOUT", `GET ${url}: no complete answer within ${timeoutMs} ms`, undefined, { cause: e });
  }
  const code = err?.cause?.code ?? err?.code;
  const detail = err?.cause?.message ?? err?.message ?? String(e);
  return new CollateralError("PCCS_UNREACHABLE", `GET ${url}: ${code && !detail.includes(code) ? `${code} ${detail}` : detail}`, undefined, { cause: e });
}

function tooLarge(url: string, size: number | null): CollateralError {
  return new CollateralError("PCCS_RESPONSE_TOO_LARGE", `GET ${url}: answer ${size === null ? "exceeds" : `of ${size} bytes exceeds`} the limit of ${PCCS_MAX_BODY_BYTES} bytes`);
}

export async function readBounded(res: Response, url: string): Promise<Uint8Array> {
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > PCCS_MAX_BODY_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(url, Number(declared));
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > PCCS_MAX_BODY_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(url, null);
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks, n));
}

/** The PEM issuer chain in the first of `names` present (percent-encoded, as PCS sends it). */
export function header(a: HttpAnswer, names: string[]): string {
  for (const name of names) {
    const v = a.headers.get(name);
    if (v === null) continue;
    let text: string;
    try {
      text = decodeURIComponent(v);
    } catch {
      throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: header ${name} is not valid percent-encoding`);
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: header ${name} holds no PEM certificate`);
    return text;
  }
  throw new CollateralError("PCCS_HEADER_MISSING", `GET ${a.url}: no ${names.join(" or ")} header`);
}

export function utf8(a: HttpAnswer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(a.body);
  } catch {
    throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: body is not UTF-8`);
  }
}

/** A CRL answer as DER: DER itself, PEM ("X509 CRL"), or hex text (Intel's PCCS /rootcacrl). */
export function crlDer(a: HttpAnswer): Uint8Array {
  const b = a.body;
  if (b.length === 0) throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: empty body`);
  if (b[0] === 0x30) return b;
  const text = Buffer.from(b).toString("latin1").trim();
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) return fromHex(text);
  if (text.includes("-----BEGIN X509 CRL-----")) {
    try {
      const der = pemBlocks(text, "X509 CRL")[0];
      if (der) return der;
    } catch (e) {
      throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: ${(e as Error).message}`, undefined, { cause: e });
    }
  }
  throw new CollateralError("PCCS_RESPONSE_INVALID", `GET ${a.url}: body is not a CRL (neither DER, PEM nor hex)`);
}

/** "CODE: detail", how a failure is named in `error` and in COLLATERAL_UNAVAILABLE's message. */
export function describe(e: unknown): string {
  if (e instanceof AttestableMcpError) return `${e.code}: ${e.message}`;
  return `${(e as Error)?.name ?? "Error"}: ${(e as Error)?.message ?? String(e)}`;
}
