import { htmlToText } from './html-to-text.js';
import { cardScheme, IBAN_LENGTHS, isValidIban, isValidNino, isValidNir, isValidSsn, passesLuhn } from './pii-validators.js';
import type { ScannableMessage } from './scannable-message.js';

/** Kind of a {@link PiiFinding}. */
export type PiiKind = 'CARD' | 'IBAN' | 'PHONE' | 'NATIONAL_ID';

/**
 * One piece of personal data found in a text. It never holds the raw value: only `masked`, in
 * which every letter and digit but the last four is replaced by `*` and separators are kept
 * (`**** **** **** 4242`).
 */
export interface PiiFinding {
  kind: PiiKind;
  /**
   * CARD: scheme (`VISA`, `MASTERCARD`, `AMEX`, `DISCOVER`, `DINERS`, `JCB`, `UNIONPAY`, `MIR`,
   * `MAESTRO`); IBAN: country code; PHONE: `INTERNATIONAL` (`+` or `00`) or `NATIONAL`;
   * NATIONAL_ID: `US_SSN`, `FR_NIR` or `UK_NINO`.
   */
  subtype: string | null;
  /** The value with all but its last four letters/digits replaced by `*`. */
  masked: string;
  /** Index of the value's first character in the scanned text (UTF-16 units). */
  offset: number;
}

/** Where in a message a {@link MessagePiiFinding} was found. */
export type PiiSource = 'text' | 'html' | `attachment:${string}`;

/** A {@link PiiFinding} from {@link scanMessagePii}, with the part it came from. */
export interface MessagePiiFinding extends PiiFinding {
  /**
   * `text` (plain body), `html` (HTML body after {@link htmlToText}; `offset` refers to that text)
   * or `attachment:<filename>` (`attachment:unnamed` without a name).
   */
  source: PiiSource;
}

/** Letters and digits, the characters masking counts. */
const ALPHANUMERIC = /[\p{L}\p{N}]/u;

/** Replaces every letter/digit except the last four with `*`, keeping separators in place. */
export function maskValue(raw: string): string {
  const chars = [...raw];
  let keep = 4;
  for (let i = chars.length - 1; i >= 0; i -= 1) {
    const ch = chars[i] ?? '';
    if (!ALPHANUMERIC.test(ch)) continue;
    if (keep > 0) keep -= 1;
    else chars[i] = '*';
  }
  return chars.join('');
}

/**
 * Card candidates: 13–19 contiguous digits, or the printed groupings 4-4-4-x(-x) and 4-6-4/5
 * (Amex, Diners) with one consistent space or dash. The guards refuse a match that is part of a
 * longer number, a decimal, or a `+` phone number.
 */
const CARD = /(?<![\w+\-./])(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5})(?![\w+]|[ \-./]?\d)/g;
/** IBAN candidates: country, check digits, then a run the scan cuts to the country's length. */
const IBAN = /(?<![A-Za-z0-9])([A-Z]{2})\d{2}(?: ?[A-Z0-9]){10,32}/g;
/** US SSN, in its dashed form only: nine bare digits are as likely an order number. */
const SSN = /(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w]|-\d)/g;
/** French NIR, 15 characters with optional single spaces anywhere; structure checked afterwards. */
const NIR = /(?<![\w])[1-478](?: ?[0-9AB]){14}(?![\w])/g;
/** UK National Insurance number, with optional spaces between the pairs. */
const NINO = /(?<![\w])[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])/g;
/**
 * Phone candidates: optional `+`, then digit groups split by one space, dot or dash, with
 * parenthesised groups such as `(555)` or `(0)`. Validated by {@link phoneSubtype}.
 */
const PHONE = /(?<![\w+\-./(])(?:\+ ?)?(?:\(\d{1,5}\)[ .-]?)?\d+(?:[ .-]?\(\d{1,5}\)[ .-]?\d+|[ .-]\d+)*/g;

/** North American layout: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567. */
const NANP_SHAPE = /^(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}$/;
/** Day-month-year and year-month-day, which otherwise pass for 8-digit phone numbers. */
const DATE_SHAPE = /^(?:\d{1,2}([ ./-])\d{1,2}\1\d{2,4}|\d{4}([ ./-])\d{1,2}\2\d{1,2})$/;
const SSN_SHAPE = /^\d{3}-\d{2}-\d{4}$/;

/**
 * Decides whether a phone candidate is a phone number, returning its subtype or null.
 * International (`+` or `00`): 8–15 digits (E.164). National: 8–12 digits and either a leading
 * trunk `0` or the North American layout, since bare digit runs are mostly order numbers, prices
 * and references; without separators at least 10 digits. Dates and SSN-shaped values are refused.
 */
function phoneSubtype(candidate: string): 'INTERNATIONAL' | 'NATIONAL' | null {
  const digits = candidate.replace(/\D/g, '');
  if (candidate.startsWith('+')) {
    return digits.length >= 8 && digits.length <= 15 && !digits.startsWith('0') ? 'INTERNATIONAL' : null;
  }
  if (DATE_SHAPE.test(candidate) || SSN_SHAPE.test(candidate)) return null;
  const opens = candidate.split('(').length - 1;
  if (opens !== candidate.split(')').length - 1 || opens > 1) return null;
  if (digits.startsWith('00')) {
    return digits.length >= 10 && digits.length <= 17 ? 'INTERNATIONAL' : null;
  }
  if (digits.length < 8 || digits.length > 12) return null;
  if (NANP_SHAPE.test(candidate)) return 'NATIONAL';
  if (!candidate.startsWith('0') && !candidate.startsWith('(0')) return null;
  // "0.5…" or "0 12 …" are not written phone numbers; trunk-prefixed area codes have 2+ digits.
  const firstGroup = /^\(?(\d+)/.exec(candidate)?.[1] ?? '';
  if (firstGroup.length < 2) return null;
  if (/^\d+$/.test(candidate) && digits.length < 10) return null;
  return 'NATIONAL';
}

interface Span {
  start: number;
  end: number;
}

/** Collects findings while refusing any value that overlaps one already taken. */
class FindingCollector {
  readonly findings: PiiFinding[] = [];
  private readonly spans: Span[] = [];

  overlaps(start: number, end: number): boolean {
    return this.spans.some((s) => start < s.end && s.start < end);
  }

  add(kind: PiiKind, subtype: string | null, raw: string, offset: number): void {
    this.spans.push({ start: offset, end: offset + raw.length });
    this.findings.push({ kind, subtype, masked: maskValue(raw), offset });
  }
}

function scanCards(text: string, out: FindingCollector): void {
  for (const m of text.matchAll(CARD)) {
    const digits = m[0].replace(/\D/g, '');
    const scheme = cardScheme(digits);
    if (scheme !== null && passesLuhn(digits)) out.add('CARD', scheme, m[0], m.index);
  }
}

function scanIbans(text: string, out: FindingCollector): void {
  const pattern = new RegExp(IBAN.source, 'g');
  for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
    const accepted = acceptIban(text, m);
    if (accepted === null) {
      // A failed run may hide an IBAN starting inside it ("XX12 GB82 …"): resume just after.
      pattern.lastIndex = m.index + 1;
      continue;
    }
    if (!out.overlaps(m.index, m.index + accepted.length)) out.add('IBAN', m[1] ?? null, accepted, m.index);
    pattern.lastIndex = m.index + accepted.length;
  }
}

/** Cuts an IBAN candidate to its country's length; returns the accepted text or null. */
function acceptIban(text: string, m: RegExpExecArray): string | null {
  const country = m[1] ?? '';
  const length = IBAN_LENGTHS[country];
  if (length === undefined) return null;
  let count = 0;
  let end = 0;
  for (; end < m[0].length && count < length; end += 1) if (m[0][end] !== ' ') count += 1;
  if (count < length) return null;
  // The IBAN must end at a word boundary, not in the middle of a longer run of characters.
  const next = text.charAt(m.index + end);
  if (/[A-Za-z0-9]/.test(next)) return null;
  const raw = m[0].slice(0, end);
  return isValidIban(raw.replace(/ /g, '')) ? raw : null;
}

function scanNationalIds(text: string, out: FindingCollector): void {
  for (const m of text.matchAll(SSN)) {
    if (isValidSsn(m[0].replace(/-/g, '')) && !out.overlaps(m.index, m.index + m[0].length)) {
      out.add('NATIONAL_ID', 'US_SSN', m[0], m.index);
    }
  }
  for (const m of text.matchAll(NIR)) {
    if (isValidNir(m[0].replace(/ /g, '')) && !out.overlaps(m.index, m.index + m[0].length)) {
      out.add('NATIONAL_ID', 'FR_NIR', m[0], m.index);
    }
  }
  for (const m of text.matchAll(NINO)) {
    if (isValidNino(m[0].replace(/ /g, '')) && !out.overlaps(m.index, m.index + m[0].length)) {
      out.add('NATIONAL_ID', 'UK_NINO', m[0], m.index);
    }
  }
}

function scanPhones(text: string, out: FindingCollector): void {
  for (const m of text.matchAll(PHONE)) {
    const raw = m[0];
    const end = m.index + raw.length;
    // The pattern is greedy, so a following letter or digit means the number runs on.
    if (/[\p{L}\p{N}_]/u.test(text.charAt(end))) continue;
    const subtype = phoneSubtype(raw);
    if (subtype !== null && !out.overlaps(m.index, end)) out.add('PHONE', subtype, raw, m.index);
  }
}

/**
 * Finds card numbers (scheme prefix + Luhn), IBANs (country length + mod 97), national ids (US SSN,
 * French NIR, UK NINO, each with its validity rules) and phone numbers in a text. Checked kinds go
 * first and a phone candidate overlapping one of them is dropped, so a card is never also a phone.
 * Findings are sorted by offset; none holds the raw value.
 */
export function scanPii(text: string): PiiFinding[] {
  const out = new FindingCollector();
  scanCards(text, out);
  scanIbans(text, out);
  scanNationalIds(text, out);
  scanPhones(text, out);
  return out.findings.sort((a, b) => a.offset - b.offset);
}

/** `text/plain; charset=…` → `text/plain`. */
function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

/**
 * Scans every readable part of a message: the plain body, the HTML body as text, and `text/*`
 * attachments that have content (decoded as UTF-8; `text/html` ones converted to text first).
 * Plain and HTML bodies usually say the same thing, so one value may be reported from both.
 */
export function scanMessagePii(message: ScannableMessage): MessagePiiFinding[] {
  const results: MessagePiiFinding[] = [];
  const scan = (text: string, source: PiiSource): void => {
    for (const finding of scanPii(text)) results.push({ ...finding, source });
  };
  if (message.textBody) scan(message.textBody, 'text');
  if (message.htmlBody) scan(htmlToText(message.htmlBody), 'html');
  for (const attachment of message.attachments ?? []) {
    const type = mediaType(attachment.contentType);
    if (!type.startsWith('text/') || attachment.content === undefined) continue;
    const decoded = attachment.content.toString('utf8');
    scan(type === 'text/html' ? htmlToText(decoded) : decoded, `attachment:${attachment.filename ?? 'unnamed'}`);
  }
  return results;
}
