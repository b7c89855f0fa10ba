/**
 * RFC 9728 protected-resource metadata for `auth.mode: oauth`: which authorization server issues
 * tokens for this resource and with what scopes, so that an MCP client that got a 401 can obtain
 * one. Open, like /.well-known/attestation: a caller needs it before it has a token. Served at the
 * well-known path and at its path-suffixed forms (the resource's own path, and /mcp), which MCP
 * clients try first.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { OAuthConfig } from "../config-auth.js";

export const PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource";

export interface ResourceMetadata {
  /** Whether `path` (no query) is one this document is served at. */
  serves(path: string | undefined): boolean;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export function createResourceMetadata(cfg: OAuthConfig): ResourceMetadata {
  const own = new URL(cfg.audience).pathname.replace(/\/+$/, "");
  const paths = new Set([PROTECTED_RESOURCE_PATH, `${PROTECTED_RESOURCE_PATH}/mcp`, `${PROTECTED_RESOURCE_PATH}${own}`]);
  const body = JSON.stringify({ resource: cfg.audience, authorization_servers: [cfg.issuer], scopes_supported: cfg.scopes, bearer_methods_supported: ["header"] });
  return {
    serves: (path) => path !== undefined && paths.has(path),
    handle(req, res) {
      req.resume();
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { Allow: "GET, HEAD", "Content-Length": 0 });
        res.end();
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), "Cache-Control": "max-age=300" });
      res.end(req.method === "HEAD" ? undefined : body);
    },
  };
}
