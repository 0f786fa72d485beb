/** One attachment of a {@link ScannableMessage}; `content` is absent when the bytes were not loaded. */
export interface ScannableAttachment {
  /** File name as declared by the message, if any. */
  filename: string | null;
  /** MIME type, possibly with parameters (`text/plain; charset=utf-8`). */
  contentType: string;
  /** Raw bytes; scanners skip an attachment without them. */
  content?: Buffer;
}

/**
 * The view of a stored message that every scanner reads. It is built from the `message` row and
 * its parsed bodies, so scanners stay free of database and parser code.
 */
export interface ScannableMessage {
  /** Message id in the archive; scanners only pass it through. */
  id: string;
  /** Sender address (`user@example.com`), without display name. */
  from: string | null;
  subject: string | null;
  date: Date | null;
  /** Header values keyed by lowercased header name; repeated headers are joined by the caller. */
  headers: Record<string, string>;
  textBody: string | null;
  htmlBody: string | null;
  attachments?: ScannableAttachment[];
}

/**
 * Reads a header by name. Names are meant to be lowercased already; the case-insensitive fallback
 * only guards against a caller that forgot.
 */
export function getHeader(headers: Record<string, string>, name: string): string | null {
  const lower = name.toLowerCase();
  const direct = headers[lower];
  if (direct !== undefined) return direct;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === lower) return value;
  }
  return null;
}

/**
 * Normalises a sender for grouping: lowercased and trimmed, with the address taken out of
 * `Name <addr>` in case a display name slipped through. Returns null when nothing is left.
 */
export function normalizeSender(from: string | null): string | null {
  if (from === null) return null;
  const angle = /<([^<>]*)>/.exec(from);
  const address = (angle?.[1] ?? from).trim().toLowerCase();
  return address === '' ? null : address;
}
