/**
 * Who a request comes from when that is more than an address: under mutual attestation, a client
 * whose certificate the gate trusts is that certificate (its SHA-256), wherever it connects from.
 * Shares are then counted per enclave identity, not per NAT or per connection.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { VERDICT_HEADER } from "../core/protocol.js";
import type { ClientGate } from "./client-attestation.js";
import { authPrincipalOf } from "./auth/guard.js";

const principals = new WeakMap<object, string | null>();

/** `cert:<sha256>` for a connection the gate trusts; null otherwise (then the address counts). */
export function principalOf(req: IncomingMessage, gate: ClientGate): string | null {
  const socket = req.socket as TLSSocket;
  const known = principals.get(socket);
  if (known !== undefined) return known;
  if (gate.headers(req)[VERDICT_HEADER] !== "trusted") return null;
  const raw = (socket.getPeerCertificate?.() as { raw?: Buffer } | null)?.raw;
  const id = raw && raw.length > 0 ? `cert:${createHash("sha256").update(raw).digest("hex")}` : null;
  principals.set(socket, id);
  return id;
}

/**
 * The caller as sessions and shares know it: its bearer key (`key:NAME`) or token subject
 * (`sub:SUBJECT`), its trusted certificate, or both when both are configured (a session is then
 * that caller on that enclave); null: the address.
 */
export function callerOf(req: IncomingMessage, gate: ClientGate | null): string | null {
  const cert = gate ? principalOf(req, gate) : null;
  const key = authPrincipalOf(req);
  return key !== null && cert !== null ? `${key} ${cert}` : (key ?? cert);
}
