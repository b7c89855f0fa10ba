/**
 * Framing both sides of the stdio bridge use: newline-delimited JSON on stdin, Server-Sent Events
 * on HTTP responses. Both read chunk by chunk and join a line only once its end is seen, so a
 * 20 MB message costs one join, not one copy per chunk.
 */

/** Splits text into lines on LF, CRLF or (for SSE) lone CR; `push` may be called with any cut. */
export class LineSplitter {
  private parts: string[] = [];
  private afterCr = false;
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly loneCr: boolean,
  ) {}

  push(text: string): void {
    let start = 0;
    if (this.afterCr && text.startsWith("\n")) start = 1;
    this.afterCr = false;
    for (;;) {
      const lf = text.indexOf("\n", start);
      const cr = this.loneCr ? text.indexOf("\r", start) : -1;
      const i = cr >= 0 && (lf < 0 || cr < lf) ? cr : lf;
      if (i < 0) {
        if (start < text.length) this.parts.push(text.slice(start));
        return;
      }
      this.parts.push(text.slice(start, i));
      let line = this.parts.length === 1 ? this.parts[0]! : this.parts.join("");
      this.parts = [];
      if (!this.loneCr && line.endsWith("\r")) line = line.slice(0, -1);
      start = i + 1;
      if (i === cr) {
        if (text[start] === "\n") start++;
        else if (start === text.length) this.afterCr = true;
      }
      this.onLine(line);
    }
  }

  /** What is left without a line end (stdin closed mid-line). */
  rest(): string {
    const r = this.parts.join("");
    this.parts = [];
    return r;
  }
}

export interface SseEvent {
  event: string;
  data: string;
}

/** The SSE event stream format (HTML Living Standard, 9.2.6), enough of it for MCP: data, event, id. */
export class SseParser {
  private data: string[] = [];
  private event = "";
  /** The last event ID (kept across events, as EventSource keeps it), for Last-Event-ID. */
  lastEventId: string | undefined;
  private readonly lines: LineSplitter;

  constructor(onEvent: (e: SseEvent) => void) {
    this.lines = new LineSplitter((line) => {
      if (line === "") {
        const data = this.data.join("\n");
        // A priming event (an id and empty data) is dispatched to nobody.
        if (data !== "") onEvent({ event: this.event || "message", data });
        this.data = [];
        this.event = "";
        return;
      }
      if (line.startsWith(":")) return;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    }, true);
  }

  push(text: string): void {
    this.lines.push(text);
  }
}

/** Text chunks of a response body, decoded as UTF-8 across chunk boundaries. */
export async function* textChunks(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8");
  for await (const chunk of body) {
    const t = decoder.decode(chunk, { stream: true });
    if (t) yield t;
  }
  const tail = decoder.decode();
  if (tail) yield tail;
}
