/**
 * Streaming mbox reader (mboxo and mboxrd).
 *
 * A message starts after a "From_" line: a line beginning with `From ` at the start of the file or
 * right after a newline. The From_ line itself is dropped. Inside a message, a line matching
 * `>+From ` loses one `>` (mboxrd un-quoting; for mboxo that turns `>From ` back into `From `).
 *
 * Both functions share one scanner, so {@link countMboxMessages} always agrees with
 * {@link splitMbox}. Work is done on Buffers with native `indexOf`, and only the current message
 * is held in memory.
 */

/** A chunk of an mbox file as read from a stream, a fetch body or a test. */
export type MboxChunk = Uint8Array | Buffer | string;

/** Options of {@link splitMbox}. */
export interface SplitMboxOptions {
  /**
   * A message with more bytes than this is not assembled: its bytes are skipped up to the next
   * From_ line and it is yielded as an {@link MboxOversizedMessage}. (Default: no limit)
   */
  maxMessageBytes?: number;
}

/** A message larger than `maxMessageBytes`: skipped without being held in memory. */
export interface MboxOversizedMessage {
  /** Always null: the bytes were not kept. */
  raw: null;
  /** Its size in bytes (after un-quoting, before the separator line is dropped). */
  size: number;
}

const LF = 0x0a;
const CR = 0x0d;
const GT = 0x3e;
const FROM = Buffer.from('From ', 'latin1');
const NL_FROM = Buffer.from('\nFrom ', 'latin1');
const NL_GT = Buffer.from('\n>', 'latin1');

function toBuffer(chunk: MboxChunk): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  // Wraps the same memory; no copy.
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** True when `buf[at..]` starts with `From `. */
function startsWithFrom(buf: Buffer, at: number): boolean {
  return (
    at + 5 <= buf.length && buf[at] === 0x46 && buf[at + 1] === 0x72 && buf[at + 2] === 0x6f && buf[at + 3] === 0x6d && buf[at + 4] === 0x20
  );
}

/**
 * Whether the bytes `buf[start..]` (an unfinished last line) could still turn into a From_ line or
 * a quoted `>From ` line once more bytes arrive: a run of `>` followed by a proper prefix of `From `.
 */
function isUndecidedLineHead(buf: Buffer, start: number): boolean {
  let i = start;
  while (i < buf.length && buf[i] === GT) i++;
  const rest = buf.length - i;
  if (rest >= FROM.length) return false;
  for (let k = 0; k < rest; k++) {
    if (buf[i + k] !== FROM[k]) return false;
  }
  return true;
}

function hasNonWhitespace(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    if (b !== 0x20 && b !== 0x09 && b !== CR && b !== LF) return true;
  }
  return false;
}

/**
 * Drops the blank line an mbox writer puts between messages, so the bytes come back as they were
 * before they were appended to the file.
 */
function trimSeparatorLine(msg: Buffer): Buffer {
  const n = msg.length;
  if (n >= 4 && msg[n - 4] === CR && msg[n - 3] === LF && msg[n - 2] === CR && msg[n - 1] === LF) {
    return msg.subarray(0, n - 2);
  }
  if (n >= 2 && msg[n - 2] === LF && msg[n - 1] === LF) return msg.subarray(0, n - 1);
  if (n >= 3 && msg[n - 3] === LF && msg[n - 2] === CR && msg[n - 1] === LF) {
    return msg.subarray(0, n - 2);
  }
  return msg;
}

/**
 * Incremental mbox scanner. With `collect` it assembles message bytes; without, it only counts
 * messages (and skips the un-quoting work).
 */
class MboxScanner {
  /** Finished messages not yet handed out (collect mode). */
  readonly ready: (Buffer | MboxOversizedMessage)[] = [];
  /** Messages finished so far, including those already handed out. */
  count = 0;

  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Bytes of the current message, including those dropped once it went over the cap. */
  private messageBytes = 0;
  /** Before the first From_ line: only non-blank text there is reported as a message. */
  private inPreamble = true;
  private preambleHasContent = false;
  /** Inside a From_ line whose end has not arrived yet. */
  private skippingFromLine = false;
  /** The next chunk starts at the start of a line (true at the start of the file). */
  private atLineStart = true;
  /** Start of an unfinished line held back until it can be classified (a few bytes at most). */
  private carry: Buffer | null = null;

  /**
   * @param collect Assemble messages (else only count them).
   * @param maxMessageBytes Beyond this a message's bytes are dropped as they arrive; the two bytes
   *   of slack are for the separator line, which is not part of the message.
   */
  constructor(
    private readonly collect: boolean,
    private readonly maxMessageBytes = Number.POSITIVE_INFINITY,
  ) {}

  write(chunk: Buffer): void {
    let data = chunk;
    if (this.carry !== null) {
      data = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    if (data.length === 0) return;

    let pos = 0;
    let lineStart0 = this.atLineStart;
    if (this.skippingFromLine) {
      const nl = data.indexOf(LF);
      if (nl < 0) {
        this.atLineStart = false;
        return;
      }
      this.skippingFromLine = false;
      pos = nl + 1;
      lineStart0 = false;
    }

    // The unfinished last line is held back if it may still become a From_ or `>From ` line.
    const lastNl = data.lastIndexOf(LF);
    const tailStart = lastNl >= 0 ? lastNl + 1 : lineStart0 ? 0 : -1;
    let limit = data.length;
    if (tailStart >= pos && tailStart >= 0 && isUndecidedLineHead(data, tailStart)) {
      limit = tailStart;
    }

    // Candidates are line starts beginning with `From ` or `>`, found with native search; a
    // candidate before `pos` is stale and searched again from `pos`.
    const findFrom = (start: number): number => {
      if (start === 0 && lineStart0 && startsWithFrom(data, 0)) return 0;
      const idx = data.indexOf(NL_FROM, start > 0 ? start - 1 : 0);
      return idx < 0 ? -1 : idx + 1;
    };
    const findGt = (start: number): number => {
      if (start === 0 && lineStart0 && data[0] === GT) return 0;
      const idx = data.indexOf(NL_GT, start > 0 ? start - 1 : 0);
      return idx < 0 ? -1 : idx + 1;
    };
    let fromAt = findFrom(pos);
    let gtAt = this.collect ? findGt(pos) : -1;
    for (;;) {
      if (fromAt >= 0 && fromAt < pos) fromAt = findFrom(pos);
      if (gtAt >= 0 && gtAt < pos) gtAt = findGt(pos);
      const f = fromAt >= 0 && fromAt < limit ? fromAt : -1;
      const g = gtAt >= 0 && gtAt < limit ? gtAt : -1;
      if (f < 0 && g < 0) break;

      if (f >= 0 && (g < 0 || f < g)) {
        this.append(data, pos, f);
        this.finishMessage();
        this.inPreamble = false;
        const nl = data.indexOf(LF, f);
        if (nl < 0) {
          // The From_ line continues in the next chunk.
          this.skippingFromLine = true;
          this.atLineStart = false;
          return;
        }
        pos = nl + 1;
        continue;
      }

      let i = g;
      while (i < data.length && data[i] === GT) i++;
      if (startsWithFrom(data, i)) {
        // Drop one `>`: `>From ` becomes `From `, `>>From ` becomes `>From `.
        this.append(data, pos, g);
        pos = g + 1;
      }
      gtAt = findGt(g + 1);
    }

    this.append(data, pos, limit);
    if (limit < data.length) {
      this.carry = Buffer.from(data.subarray(limit));
      this.atLineStart = true;
    } else {
      this.atLineStart = data[data.length - 1] === LF;
    }
  }

  end(): void {
    if (this.carry !== null) {
      // An unfinished last line that never became `From `: plain content.
      this.append(this.carry, 0, this.carry.length);
      this.carry = null;
    }
    this.finishMessage();
  }

  private append(data: Buffer, from: number, to: number): void {
    if (to <= from) return;
    const slice = data.subarray(from, to);
    if (this.inPreamble) {
      if (!this.preambleHasContent && hasNonWhitespace(slice)) this.preambleHasContent = true;
    }
    if (!this.collect) return;
    this.messageBytes += slice.length;
    if (this.messageBytes > this.maxMessageBytes + 2) {
      // Too big to keep: let go of what was held, and hold nothing more of this message.
      if (this.parts.length > 0) {
        this.parts = [];
        this.partsLength = 0;
      }
      return;
    }
    this.parts.push(slice);
    this.partsLength += slice.length;
  }

  private finishMessage(): void {
    const keep = !this.inPreamble || this.preambleHasContent;
    if (keep) {
      this.count++;
      if (this.collect) this.ready.push(this.assemble());
    }
    this.parts = [];
    this.partsLength = 0;
    this.messageBytes = 0;
  }

  private assemble(): Buffer | MboxOversizedMessage {
    if (this.messageBytes > this.maxMessageBytes + 2) return { raw: null, size: this.messageBytes };
    // Buffer.concat copies, so the message never aliases the caller's chunks.
    const message = trimSeparatorLine(Buffer.concat(this.parts, this.partsLength));
    return message.length > this.maxMessageBytes ? { raw: null, size: message.length } : message;
  }
}

/**
 * Splits an mbox stream into raw messages, one Buffer per message, as soon as each is complete.
 *
 * - The From_ line is dropped; `>From ` / `>>From ` lines are un-quoted by one `>`.
 * - The blank line that separates messages in the file is removed from the end of each message.
 * - Whitespace before the first From_ line is ignored; any other text there is yielded as a
 *   message of its own (and counted), so nothing in the file is silently lost.
 * - LF and CRLF files both work, and chunks may split the input anywhere.
 * - With `maxMessageBytes`, a bigger message is yielded as an {@link MboxOversizedMessage} in its
 *   place (so indexes and counts still match {@link countMboxMessages}); its bytes are never held.
 *
 * Memory is bounded by the largest message kept (at most `maxMessageBytes`) plus one chunk. Chunks
 * are referenced until their message is complete, so a producer must not reuse a chunk's memory
 * after handing it over.
 *
 * @param source Async iterable of chunks (e.g. `fs.createReadStream(path)`); strings are UTF-8.
 */
export function splitMbox(source: AsyncIterable<MboxChunk>): AsyncGenerator<Buffer>;
export function splitMbox(source: AsyncIterable<MboxChunk>, options: SplitMboxOptions): AsyncGenerator<Buffer | MboxOversizedMessage>;
export async function* splitMbox(
  source: AsyncIterable<MboxChunk>,
  options: SplitMboxOptions = {},
): AsyncGenerator<Buffer | MboxOversizedMessage> {
  const scanner = new MboxScanner(true, options.maxMessageBytes);
  for await (const chunk of source) {
    scanner.write(toBuffer(chunk));
    if (scanner.ready.length > 0) {
      const ready = scanner.ready.splice(0);
      for (const message of ready) yield message;
    }
  }
  scanner.end();
  for (const message of scanner.ready.splice(0)) yield message;
}

/**
 * Counts the messages of an mbox stream without assembling them (for a progress `total`).
 * Always equals the number of Buffers {@link splitMbox} would yield for the same bytes.
 *
 * @param source Async iterable of chunks; strings are UTF-8.
 */
export async function countMboxMessages(source: AsyncIterable<MboxChunk>): Promise<number> {
  const scanner = new MboxScanner(false);
  for await (const chunk of source) scanner.write(toBuffer(chunk));
  scanner.end();
  return scanner.count;
}
