/**
 * A PCCS stand-in on 127.0.0.1: the v4 routes a PCCS serves, answering from collateral sets (real
 * vectors in the PCS layout, or dev collateral), with the headers a PCCS sends (percent-encoded
 * issuer chains, content types), a request log, and faults to switch on.
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { CollateralParts } from "../../proxy/evidence/dcap/collateral.js";

export interface StandinSet {
  tee: "SGX" | "TDX";
  /** Lower-case hex. */
  fmspc: string;
  ca: "processor" | "platform";
  /** Response bodies exactly as served. */
  tcbBody: string;
  tcbChain: string;
  qeBody: string;
  qeChain: string;
  /** DER. */
  pckCrl: Uint8Array;
  pckCrlChain: string;
  /** DER. */
  rootCrl: Uint8Array;
}

function facts(tcbBody: string): { tee: "SGX" | "TDX"; fmspc: string } {
  const t = (JSON.parse(tcbBody) as { tcbInfo: { id?: string; fmspc: string } }).tcbInfo;
  return { tee: t.id === "TDX" ? "TDX" : "SGX", fmspc: t.fmspc.toLowerCase() };
}

/** A collateral directory in the PCS layout (the shared vectors), served byte for byte. */
export async function setFromPcsDirectory(dir: string, ca: "processor" | "platform"): Promise<StandinSet> {
  const r = (n: string) => readFile(join(dir, n));
  const tcbBody = (await r("tcb-info.json")).toString("utf8");
  return {
    ...facts(tcbBody),
    ca,
    tcbBody,
    tcbChain: (await r("tcb-info-issuer-chain.pem")).toString("latin1"),
    qeBody: (await r("qe-identity.json")).toString("utf8"),
    qeChain: (await r("qe-identity-issuer-chain.pem")).toString("latin1"),
    pckCrl: new Uint8Array(await r("pck-crl.der")),
    pckCrlChain: (await r("pck-crl-issuer-chain.pem")).toString("latin1"),
    rootCrl: new Uint8Array(await r("root-ca-crl.der")),
  };
}

/** Collateral parts (dev collateral) as a PCCS would serve them. */
export function setFromParts(p: CollateralParts, ca: "processor" | "platform"): StandinSet {
  const body = (member: string, text: string, sig: Uint8Array) => `{"${member}":${text},"signature":"${Buffer.from(sig).toString("hex")}"}`;
  const tcbBody = body("tcbInfo", p.tcbInfo, p.tcbInfoSignature);
  return {
    ...facts(tcbBody),
    ca,
    tcbBody,
    tcbChain: p.tcbInfoIssuerChain,
    qeBody: body("enclaveIdentity", p.qeIdentity, p.qeIdentitySignature),
    qeChain: p.qeIdentityIssuerChain,
    pckCrl: p.pckCrl,
    pckCrlChain: p.pckCrlIssuerChain,
    rootCrl: p.rootCaCrl,
  };
}

export type Fault =
  /** Every route answers 500. */
  | "http-500"
  /** Requests are accepted and never answered. */
  | "hang"
  /** Headers and part of the body, then nothing. */
  | "hang-body"
  /** The TCB info signature has one bit flipped. */
  | "tamper-tcb-signature"
  /** The PCK CRL's signature has one bit flipped (its last byte). */
  | "tamper-pck-crl"
  /** The TCB info issuer chain header is left out. */
  | "no-tcb-chain-header"
  /** The QE identity body is cut short (not JSON). */
  | "malformed-qe-body"
  /** The TCB info body is 1 MiB + 1 byte, with Content-Length. */
  | "oversize"
  /** The same, chunked (no Content-Length). */
  | "oversize-chunked"
  /** The TCB info chain in the v3 header name SGX-TCB-Info-Issuer-Chain. */
  | "old-tcb-header";

const V4 = /^\/(sgx|tdx)\/certification\/v4\/(tcb|qe\/identity|pckcrl|rootcacrl)$/;

export class PccsStandin {
  /** Path and query of every request, in order. */
  readonly requests: string[] = [];
  fault: Fault | null = null;
  private closed = false;

  private constructor(
    private readonly server: Server,
    /** "http://127.0.0.1:PORT/" */
    readonly url: string,
    public sets: StandinSet[],
  ) {}

  static async start(sets: StandinSet[]): Promise<PccsStandin> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const s = new PccsStandin(server, `http://127.0.0.1:${port}/`, sets);
    server.on("request", (req, res) => s.handle(req, res));
    return s;
  }

  /** Requests whose path contains `part`. */
  count(part = ""): number {
    return this.requests.filter((r) => r.includes(part)).length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await done;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const u = new URL(req.url ?? "/", "http://x");
    this.requests.push(`${u.pathname}${u.search}`);
    if (this.fault === "hang") return;
    if (this.fault === "http-500") return void res.writeHead(500, { "content-type": "text/plain" }).end("internal error");
    if (req.method !== "GET") return void res.writeHead(405).end();

    if (u.pathname === "/IntelSGXRootCA.der") {
      const set = this.sets[0];
      if (!set) return void res.writeHead(404).end();
      return void res.writeHead(200, { "content-type": "application/pkix-crl" }).end(set.rootCrl);
    }
    const m = V4.exec(u.pathname);
    if (!m) return void res.writeHead(404).end();
    const tee = m[1] === "tdx" ? "TDX" : "SGX";
    const route = m[2]!;
    const chainHeader = (chain: string) => encodeURIComponent(chain);

    if (route === "tcb") {
      const fmspc = u.searchParams.get("fmspc")?.toLowerCase();
      const set = this.sets.find((s) => s.tee === tee && s.fmspc === fmspc);
      if (!set) return void res.writeHead(404, { "content-type": "text/plain" }).end("no such FMSPC");
      let body = set.tcbBody;
      if (this.fault === "tamper-tcb-signature") {
        body = body.replace(/("signature"\s*:\s*")([0-9a-fA-F])/, (_, head: string, c: string) => head + (parseInt(c, 16) ^ 1).toString(16));
      }
      if (this.fault === "oversize" || this.fault === "oversize-chunked") {
        const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
        if (this.fault === "oversize") return void res.writeHead(200, { "content-type": "application/json", "content-length": String(big.length) }).end(big);
        res.writeHead(200, { "content-type": "application/json" });
        for (let i = 0; i < big.length; i += 64 * 1024) res.write(big.subarray(i, i + 64 * 1024));
        return void res.end();
      }
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (this.fault !== "no-tcb-chain-header") headers[this.fault === "old-tcb-header" ? "SGX-TCB-Info-Issuer-Chain" : "TCB-Info-Issuer-Chain"] = chainHeader(set.tcbChain);
      if (this.fault === "hang-body") {
        res.writeHead(200, headers);
        return void res.write(body.slice(0, 10));
      }
      return void res.writeHead(200, headers).end(body);
    }
    if (route === "qe/identity") {
      const set = this.sets.find((s) => s.tee === tee);
      if (!set) return void res.writeHead(404).end();
      const body = this.fault === "malformed-qe-body" ? set.qeBody.slice(0, set.qeBody.length - 5) : set.qeBody;
      return void res.writeHead(200, { "content-type": "application/json", "SGX-Enclave-Identity-Issuer-Chain": chainHeader(set.qeChain) }).end(body);
    }
    if (tee !== "SGX") return void res.writeHead(404).end();
    if (route === "pckcrl") {
      const ca = u.searchParams.get("ca")?.toLowerCase();
      const set = this.sets.find((s) => s.ca === ca);
      if (!set || u.searchParams.get("encoding")?.toLowerCase() !== "der") return void res.writeHead(400).end();
      const crl = Uint8Array.from(set.pckCrl);
      if (this.fault === "tamper-pck-crl") crl[crl.length - 1] = crl[crl.length - 1]! ^ 1;
      return void res.writeHead(200, { "content-type": "application/pkix-crl", "SGX-PCK-CRL-Issuer-Chain": chainHeader(set.pckCrlChain) }).end(crl);
    }
    // rootcacrl: Intel's PCCS answers the DER CRL as hex text (with the CRL content type).
    const set = this.sets[0];
    if (!set) return void res.writeHead(404).end();
    return void res.writeHead(200, { "content-type": "application/pkix-crl" }).end(Buffer.from(set.rootCrl).toString("hex"));
  }
}
