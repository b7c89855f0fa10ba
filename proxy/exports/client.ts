/**
 * `attestable-mcp-proxy/client`: talking to an attested server. `attestedFetch` and
 * `createAttestedAgent` refuse a connection whose RA-TLS certificate (and fresh evidence, where
 * the policy asks for it) does not satisfy the policy before a byte of the request is sent;
 * `verifyRemote` connects once and returns the verdict. A policy comes from `loadPolicy` in
 * `attestable-mcp-proxy/verify`.
 */
export { attestedFetch, createAttestedAgent, verifyRemote, rejectionOf } from "../client/connector.js";
export type { ConnectorOptions, AttestedFetch } from "../client/connector.js";
export type { ConnectionVerdict, FreshnessResult } from "../client/verdict.js";
export { AttestationRejectedError } from "../client/errors.js";
export { ConnectorError } from "../core/errors.js";
export type { ConnectorCode } from "../core/errors.js";
