/**
 * Newline-delimited framing of a child's stdout, in linear time and bounded memory.
 *
 * The SDK's ReadBuffer concatenates the whole buffer on every chunk (quadratic in a line's size)
 * and gives up on the stream past 10 MiB. Here chunks are kept in a list and joined once per line;
 * a line longer than the cap is never held: its bytes go through `IdScanner` as they arrive and are
 * dropped, so that its owner can still answer the request the line was the answer to.
 */

/** What could be read from a line that was skipped: enough to answer or refuse it. */
export interface Skipped {
  /** The top-level `id` member (the last one, as JSON.parse would keep); null when absent or unreadable. */
  id: string | number | null;
  /** Whether the object has a top-level `method` member: the child's own request or notification. */
  method: boolean;
  /** The line's length in bytes, without its line ending. */
  bytes: number;
}

const NL = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Longest key worth reading ("id", "method", with escapes); longer keys are neither. */
const KEY_MAX = 32;
/** Longest id kept; a longer one is taken as unreadable rather than held. */
const ID_MAX = 1024;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === NL || b === CR;
}

type Expect = "start" | "key" | "colon" | "value" | "after" | "done";

/**
 * Reads the top-level `id` and `method` members of one JSON object as its bytes stream by, without
 * holding it: string and escape state and nesting depth decide what is a top-level key, so an
 * `"id"` inside a nested value or inside a string is not taken. UTF-8 continuation bytes are all
 * ≥ 0x80 and never look like JSON punctuation, so bytes are scanned as they are.
 */
export class IdScanner {
  private expect: Expect = "start";
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Raw bytes of the top-level key being read, or of the id value being captured. */
  private capture: number[] | null = null;
  private captureOverflow = false;
  private key: "id" | "method" | "other" = "other";
  /** Capturing the current top-level value (an id), as a string literal or a bare token. */
  private capturing: "string" | "bare" | null = null;
  private id: string | number | null = null;
  private hasMethod = false;

  push(buf: Uint8Array, start = 0, end = buf.length): void {
    for (let i = start; i < end; i++) {
      if (this.expect === "done") return;
      const b = buf[i]!;
      if (this.inString) {
        if (this.capture !== null && !this.captureOverflow) {
          if (this.capture.length >= (this.expect === "key" ? KEY_MAX : ID_MAX)) this.captureOverflow = true;
          else this.capture.push(b);
        } else if (!this.escaped && b !== QUOTE && b !== BACKSLASH) {
          // The bulk of a large line is string content: jump to the next quote or backslash.
          const q = indexOfEither(buf, i + 1, end);
          i = q - 1;
          continue;
        }
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.endString();
        continue;
      }
      if (this.capturing === "bare") {
        if (isSpace(b) || b === 0x2c || b === 0x7d) {
          this.finishValue();
        } else {
          this.pushCapture(b);
          continue;
        }
      }
      if (isSpace(b)) continue;
      this.structural(b);
    }
  }

  /** What was read; call once the line has ended. */
  result(): { id: string | number | null; method: boolean } {
    if (this.capturing === "bare") this.finishValue();
    return { id: this.id, method: this.hasMethod };
  }

  private structural(b: number): void {
    if (this.expect === "start") {
      this.expect = b === 0x7b ? "key" : "done";
      this.depth = 1;
      return;
    }
    if (this.depth > 1) {
      if (b === QUOTE) this.inString = true;
      else if (b === 0x7b || b === 0x5b) this.depth++;
      else if (b === 0x7d || b === 0x5d) {
        this.depth--;
        if (this.depth === 1) this.expect = "after";
      }
      return;
    }
    switch (this.expect) {
      case "key":
        if (b === QUOTE) {
          this.inString = true;
          this.capture = [];
          this.captureOverflow = false;
        } else {
          // `}` of an empty object, or not JSON: nothing more to find.
          this.expect = "done";
        }
        return;
      case "colon":
        this.expect = b === 0x3a ? "value" : "done";
        return;
      case "value":
        this.expect = "after";
        if (b === QUOTE) {
          this.inString = true;
          if (this.key === "id") this.startCapture("string", b);
        } else if (b === 0x7b || b === 0x5b) {
          this.depth++;
          if (this.key === "id") this.id = null;
        } else if (this.key === "id") {
          this.startCapture("bare", b);
        }
        // A bare value (number, true, false, null) of another key is passed over in "after".
        return;
      case "after":
        if (b === 0x2c) this.expect = "key";
        else if (b === 0x7d) this.expect = "done";
        // Bytes of a bare value of another key end up here and are passed over.
        return;
      default:
        return;
    }
  }

  private startCapture(kind: "string" | "bare", first: number): void {
    this.capturing = kind;
    this.capture = [first];
    this.captureOverflow = false;
  }

  private pushCapture(b: number): void {
    if (this.capture === null || this.captureOverflow) return;
    if (this.capture.length >= ID_MAX) this.captureOverflow = true;
    else this.capture.push(b);
  }

  private endString(): void {
    this.inString = false;
    if (this.expect === "key" && this.capture !== null) {
      const raw = this.captureOverflow ? null : Buffer.from(this.capture.slice(0, -1)).toString("utf8");
      this.capture = null;
      this.key = "other";
      if (raw !== null) {
        try {
          const k = JSON.parse(`"${raw}"`) as string;
          if (k === "id" || k === "method") this.key = k;
        } catch {
          // not a valid key: the line is not JSON, and the parser would have said so anyway
        }
      }
      if (this.key === "method") this.hasMethod = true;
      this.expect = "colon";
      return;
    }
    if (this.capturing === "string") this.finishValue();
  }

  private finishValue(): void {
    const raw = this.capture;
    const overflow = this.captureOverflow;
    this.capturing = null;
    this.capture = null;
    this.id = null;
    if (raw === null || overflow) return;
    try {
      const v: unknown = JSON.parse(Buffer.from(raw).toString("utf8"));
      if (typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) this.id = v;
    } catch {
      // an unreadable id is no id
    }
  }
}

/** Index of the next `"` or `\` in buf[from, end), or end. */
function indexOfEither(buf: Uint8Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const b = buf[i]!;
    if (b === QUOTE || b === BACKSLASH) return i;
  }
  return end;
}

/**
 * Splits a byte stream into lines of at most `maxLine` bytes (line ending not counted; a trailing
 * CR is dropped). `line` gets each complete line that is not blank; `skipped` gets each longer one,
 * which is never held beyond `maxLine` bytes.
 */
export class LineReader {
  private parts: Buffer[] = [];
  private size = 0;
  private scanner: IdScanner | null = null;
  private skippedBytes = 0;

  constructor(
    private readonly maxLine: number,
    private readonly line: (line: Buffer) => void,
    private readonly skipped: (s: Skipped) => void,
  ) {}

  /** Bytes held for the line in progress (a test watches it stay bounded). */
  get held(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NL, start);
      const end = nl < 0 ? chunk.length : nl;
      if (this.scanner !== null) {
        this.scanner.push(chunk, start, end);
        this.skippedBytes += end - start;
      } else if (this.size + (end - start) > this.maxLine + 1) {
        // +1: a CR before the newline is not part of the line; past that the line is over the cap.
        this.beginSkip();
        this.scanner!.push(chunk, start, end);
        this.skippedBytes += end - start;
      } else if (end > start) {
        this.parts.push(chunk.subarray(start, end));
        this.size += end - start;
      }
      if (nl < 0) return;
      this.endLine();
      start = nl + 1;
    }
  }

  /** Drops a line in progress (the stream ended without its newline). */
  clear(): void {
    this.parts = [];
    this.size = 0;
    this.scanner = null;
    this.skippedBytes = 0;
  }

  private beginSkip(): void {
    const scanner = new IdScanner();
    for (const p of this.parts) scanner.push(p);
    this.scanner = scanner;
    this.skippedBytes = this.size;
    this.parts = [];
    this.size = 0;
  }

  private endLine(): void {
    if (this.scanner !== null) {
      const { id, method } = this.scanner.result();
      const bytes = this.skippedBytes;
      this.clear();
      this.skipped({ id, method, bytes });
      return;
    }
    const parts = this.parts;
    let size = this.size;
    this.parts = [];
    this.size = 0;
    if (size === 0) return;
    let line = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    if (line[size - 1] === CR) line = line.subarray(0, --size);
    if (size > this.maxLine) {
      const scanner = new IdScanner();
      scanner.push(line);
      const { id, method } = scanner.result();
      this.skipped({ id, method, bytes: size });
      return;
    }
    if (line.every(isSpace)) return;
    this.line(line);
  }
}
