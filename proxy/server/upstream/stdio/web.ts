/**
 * Node's request and response to and from the web-standard ones a Streamable HTTP server transport
 * speaks. The relay writes the transport's Response itself, so it knows what it is answering (an
 * event stream or not) before the head goes out, and no response object is patched to find out.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/**
 * The request as a web Request, without its body (read and parsed already, handed over on its
 * own). The transport reads headers; the URL is informational. Aborted when the client leaves
 * before the answer is complete. Throws on a header the web Headers refuse.
 */
export function webRequest(req: IncomingMessage, res: ServerResponse): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  const ac = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) ac.abort();
  });
  return new Request(new URL(req.url ?? "/", "http://localhost"), { method: req.method ?? "GET", headers, signal: ac.signal });
}

export function isEventStream(response: Response): boolean {
  return (response.headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream");
}

function nodeHeaders(h: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of h) if (k !== "set-cookie") out[k] = v;
  const cookies = h.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
  return out;
}

/**
 * Writes a web Response to `res`. An event stream goes out as it comes, its head flushed at once,
 * and is cancelled when the client leaves (that is how the transport learns a stream is gone);
 * any other body is complete and goes out whole with its length. Resolves when the response is
 * done or the client gone.
 */
export async function writeResponse(res: ServerResponse, response: Response): Promise<void> {
  const body = response.body;
  if (res.destroyed) {
    await body?.cancel().catch(() => {});
    return;
  }
  const headers = nodeHeaders(response.headers);
  if (!body) {
    res.writeHead(response.status, headers);
    res.end();
    return;
  }
  if (!isEventStream(response)) {
    const bytes = Buffer.from(await response.arrayBuffer());
    if (res.destroyed) return;
    headers["content-length"] ??= bytes.length;
    res.writeHead(response.status, headers);
    res.end(bytes);
    return;
  }
  res.writeHead(response.status, headers);
  res.flushHeaders();
  await pipeStream(body, res);
}

function pipeStream(body: ReadableStream<Uint8Array>, res: ServerResponse): Promise<void> {
  const reader = body.getReader();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      res.off("close", cancel);
      res.off("error", cancel);
      res.off("drain", pump);
      resolve();
    };
    const cancel = (): void => {
      reader.cancel().catch(() => {});
      finish();
    };
    const pump = (): void => {
      reader.read().then(
        ({ done, value }) => {
          if (settled) return;
          if (done) {
            res.end();
            finish();
          } else if (res.destroyed) {
            cancel();
          } else if (res.write(value)) {
            pump();
          } else {
            res.once("drain", pump);
          }
        },
        () => {
          // The stream failed mid-way: a cut-short response must not look complete.
          res.destroy();
          finish();
        },
      );
    };
    res.on("close", cancel);
    res.on("error", cancel);
    pump();
  });
}
