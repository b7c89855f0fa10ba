/** Client-side helpers for tests against the attested listener on loopback. */
import { connect } from "node:tls";
import { Agent, fetch as undiciFetch } from "undici";
import { derToPem } from "../../proxy/attest/build/x509.js";

/** The DER certificate a TLS server presents (no trust decision here). */
export function servedCertificate(host: string, port: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, rejectUnauthorized: false }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new Uint8Array(raw));
    });
    s.once("error", reject);
  });
}

/**
 * A fetch that trusts exactly this certificate (as a client does after checking its evidence):
 * the certificate is the only CA, and its name is not checked (RA-TLS certificates name no host;
 * the key, bound by the quote, is the identity).
 */
export function pinnedFetch(certDer: Uint8Array): { fetch: typeof globalThis.fetch; close: () => Promise<void> } {
  const agent = new Agent({ connect: { ca: derToPem(certDer), checkServerIdentity: () => undefined } });
  const f = ((input: string | URL | Request, init?: RequestInit) => undiciFetch(input as never, { ...(init as object), dispatcher: agent } as never)) as unknown as typeof globalThis.fetch;
  return { fetch: f, close: () => agent.close() };
}
