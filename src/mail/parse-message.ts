/**
 * Parses one raw RFC 5322 message into the fields the archive stores.
 *
 * mailparser is lenient: it turns almost any bytes into a "message". The header check below is
 * ours, so that garbage is reported as {@link MalformedMessageError} instead of being archived.
 */
import { createHash } from 'node:crypto';
import { simpleParser, type AddressObject, type EmailAddress, type ParsedMail } from 'mailparser';

/** One attachment of a parsed message, content decoded. */
export interface ParsedAttachment {
  /** File name from Content-Disposition / Content-Type, `null` when the part names none. */
  filename: string | null;
  /** MIME type, lowercase (e.g. `image/png`). */
  contentType: string;
  /** Decoded size in bytes. */
  size: number;
  /** Decoded content. */
  content: Buffer;
  /** sha256 hex of the decoded content. */
  contentHash: string;
}

/** A parsed message. */
export interface ParsedMessage {
  /** Message-ID without angle brackets or whitespace; `null` when absent or empty. */
  messageId: string | null;
  /** sha256 hex of the raw bytes. */
  contentHash: string;
  /** Decoded Subject; `null` when there is no Subject header. */
  subject: string | null;
  /** First mailbox of the From header; `null` when there is none with an address. */
  from: { address: string; name: string | null } | null;
  /** Addresses of every To header, groups flattened. */
  to: string[];
  /** Addresses of every Cc header, groups flattened. */
  cc: string[];
  /** The Date header; `null` when absent or unparseable (never "now"). */
  date: Date | null;
  /**
   * The text/plain content; `null` when the message has none. HTML is not converted to text
   * here (that conversion is slow and lossy); use `htmlBody` for HTML-only messages.
   */
  textBody: string | null;
  /** The text/html content (`cid:` links kept as they are); `null` when the message has none. */
  htmlBody: string | null;
  /** Raw size in bytes. */
  size: number;
  /** Attachments, in message order. */
  attachments: ParsedAttachment[];
  /**
   * Every top-level header: lowercase name to its raw value (first occurrence, unfolded, trimmed,
   * RFC 2047 encoded words left as they are).
   */
  headers: Record<string, string>;
}

/** The raw bytes are not an e-mail message; retrying will not help. */
export class MalformedMessageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MalformedMessageError';
  }
}

// RFC 5322 field name: printable ASCII except colon; obsolete syntax allows blanks before the colon.
const HEADER_FIELD = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;
const KEY_HEADERS = new Set(['from', 'date', 'message-id', 'subject']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes of a message's start read for the header check; real header blocks are far smaller. */
const MAX_HEADER_CHECK_BYTES = 1024 * 1024;

/** The header block: everything up to the first empty line (or the whole message), at most `MAX_HEADER_CHECK_BYTES`. */
function headerBlock(raw: Buffer): string {
  const end = Math.min(raw.length, MAX_HEADER_CHECK_BYTES);
  let start = 0;
  while (start < end) {
    const nl = raw.indexOf(0x0a, start);
    const lineEnd = nl < 0 ? raw.length : nl;
    const lineLength = lineEnd - start;
    if (lineLength === 0 || (lineLength === 1 && raw[start] === 0x0d)) {
      return raw.toString('latin1', 0, start);
    }
    if (nl < 0) break;
    start = nl + 1;
  }
  return raw.toString('latin1', 0, end);
}

/** True when the bytes are only what `String.prototype.trim` removes from latin1 text (checked in place, no string copy). */
function isBlank(raw: Buffer): boolean {
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0a && b !== 0x0b && b !== 0x0c && b !== 0xa0) return false;
  }
  return true;
}

/** Throws {@link MalformedMessageError} unless the header block looks like a message's. */
function assertLooksLikeMessage(raw: Buffer): void {
  if (raw.length === 0 || isBlank(raw)) {
    throw new MalformedMessageError('Message is empty');
  }
  const lines = headerBlock(raw).split(/\r?\n/);
  let fields = 0;
  let hasKeyHeader = false;
  for (const line of lines) {
    // Continuation lines and stray text are tolerated as long as real fields exist.
    if (!HEADER_FIELD.test(line)) continue;
    fields++;
    const name = line.slice(0, line.indexOf(':')).trim().toLowerCase();
    if (KEY_HEADERS.has(name)) hasKeyHeader = true;
  }
  if (fields === 0) throw new MalformedMessageError('Message has no header fields');
  if (!hasKeyHeader) {
    throw new MalformedMessageError('Message has none of From, Date, Message-ID or Subject');
  }
}

/**
 * mailparser hands header lines over as binary (latin1) strings. Most 8-bit headers today are
 * UTF-8 (RFC 6532), so decode as UTF-8 when the bytes are valid UTF-8 and keep latin1 otherwise.
 */
function decodeHeaderLine(line: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point of this test
  if (!/[^\x00-\x7f]/.test(line)) return line;
  const bytes = Buffer.from(line, 'latin1');
  try {
    return utf8.decode(bytes);
  } catch {
    return line;
  }
}

/** A message's or attachment's content hash, as stored in `content_hash`: SHA-256, hex. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The id between the angle brackets (a trailing comment is not part of it), or the whole value
 * when there are none; whitespace removed. `null` when nothing is left.
 */
function normaliseMessageId(value: string | undefined): string | null {
  if (value === undefined) return null;
  const bracketed = /<([^>]*)>/.exec(value);
  // PostgreSQL text cannot hold NUL: an encoded one is dropped, as from every other stored text.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is removed on purpose
  const id = (bracketed ? bracketed[1]! : value).replace(/[\s\u0000]+/g, '');
  return id === '' ? null : id;
}

function mailboxes(value: AddressObject | AddressObject[] | undefined): EmailAddress[] {
  if (value === undefined) return [];
  const objects = Array.isArray(value) ? value : [value];
  const out: EmailAddress[] = [];
  const visit = (entry: EmailAddress): void => {
    if (entry.group) entry.group.forEach(visit);
    else if (entry.address) out.push(entry);
  };
  for (const object of objects) object.value.forEach(visit);
  return out;
}

/**
 * Parses a raw message.
 *
 * @param raw The message bytes exactly as stored (they are hashed as given).
 * @throws {MalformedMessageError} When the bytes are not a message (empty, no header fields, or
 *   none of From/Date/Message-ID/Subject), or when mailparser rejects them.
 */
export async function parseMessage(raw: Buffer): Promise<ParsedMessage> {
  assertLooksLikeMessage(raw);

  let mail: ParsedMail;
  try {
    mail = await simpleParser(raw, {
      // Skip work whose output we do not store: html→text, text→html, linkify, data: URLs.
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      keepCidLinks: true,
      checksumAlgo: 'sha256',
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new MalformedMessageError(`Message could not be parsed: ${reason}`, { cause: error });
  }

  const headers: Record<string, string> = {};
  for (const { key, line } of mail.headerLines) {
    // Lines without a field name (garbage tolerated above) have an empty key.
    if (key === '' || Object.hasOwn(headers, key)) continue;
    const colon = line.indexOf(':');
    const value = line.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '');
    // defineProperty, so a header called `__proto__` becomes data rather than a prototype.
    Object.defineProperty(headers, key, {
      value: decodeHeaderLine(value).trim(),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  // mailparser turns an unparseable Date into the current time; we want null instead.
  const rawDate = headers.date;
  const parsedDate = rawDate === undefined ? null : new Date(rawDate);
  const date = parsedDate !== null && !Number.isNaN(parsedDate.getTime()) ? parsedDate : null;

  const sender = mailboxes(mail.from)[0];
  const html = typeof mail.html === 'string' && mail.html !== '' ? mail.html : null;

  return {
    messageId: normaliseMessageId(headers['message-id']),
    contentHash: sha256(raw),
    subject: mail.subject ?? null,
    from: sender?.address ? { address: sender.address, name: sender.name || null } : null,
    to: mailboxes(mail.to).map((m) => m.address as string),
    cc: mailboxes(mail.cc).map((m) => m.address as string),
    date,
    // mailparser reports "" as the text of an HTML-only message when html→text is skipped.
    textBody: mail.text ? mail.text : null,
    htmlBody: html,
    size: raw.length,
    attachments: mail.attachments.map((a) => ({
      filename: a.filename ?? null,
      contentType: a.contentType,
      size: a.content.length,
      content: a.content,
      contentHash: a.checksum,
    })),
    headers,
  };
}

/**
 * The key two copies of one message share: `mid:<messageId>`, or `sha:<contentHash>` for a
 * message without Message-ID. A `mid:` key too long for the column (1,024 characters) or for its
 * unique index (a btree entry holds at most 2,704 bytes) is `mid-sha:` and the Message-ID's hash:
 * such a message could not be stored at all before, so no key already stored changes.
 */
export function dedupKey(m: Pick<ParsedMessage, 'messageId' | 'contentHash'>): string {
  if (m.messageId === null) return `sha:${m.contentHash}`;
  const key = `mid:${m.messageId}`;
  return key.length <= MAX_KEY_CHARACTERS && Buffer.byteLength(key) <= MAX_KEY_BYTES ? key : `mid-sha:${sha256(Buffer.from(m.messageId))}`;
}

/** The dedup_key column's length. */
const MAX_KEY_CHARACTERS = 1_024;
/** What the unique index (account_id, dedup_key) takes of a key, with room for its entry's header and the account id. */
const MAX_KEY_BYTES = 2_660;
