/**
 * The root entry, kept for compatibility: every name of `attestable-mcp-proxy/verify`, `/client`,
 * `/attest` and `/dev` (not `/server`), and so every module behind them. New code imports the
 * subpath it needs, which loads only that part.
 */
export * from "./exports/verify.js";
export * from "./exports/client.js";
export * from "./exports/attest.js";
export * from "./exports/dev.js";
