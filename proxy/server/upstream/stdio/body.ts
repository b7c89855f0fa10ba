/**
 * The request body of a JSON-RPC POST, read within a bound: a declared length over it is refused
 * before a byte is read, an undeclared one (chunked) as soon as it passes it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendJsonRpcError } from "../../../core/jsonrpc.js";

export type BodyResult = { ok: true; value: unknown } | { ok: false };

function tooLarge(res: ServerResponse, limit: number): void {
  sendJsonRpcError(res, 413, `Payload Too Large: request body must not exceed ${limit} bytes`, { Connection: "close" });
}

/** Reads and parses a JSON body within `limit` bytes; on failure the response has been answered (or the request is gone). */
export function readJsonBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      tooLarge(res, limit);
      resolve({ ok: false });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (r: BodyResult): void => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        tooLarge(res, limit);
        finish({ ok: false });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      let value: unknown;
      try {
        value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        sendJsonRpcError(res, 400, "Parse error: Invalid JSON", {}, -32700);
        finish({ ok: false });
        return;
      }
      finish({ ok: true, value });
    };
    const onGone = (): void => finish({ ok: false });
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}
