/**
 * Deterministic e-mail and mbox fixtures for tests and benchmarks.
 *
 * `buildMessage` writes one RFC 5322 message (CRLF); `buildMbox` writes a whole mbox file with a
 * known mix of messages and reports what a correct import should find in it.
 */
import { createHash } from 'node:crypto';

/** An attachment for {@link buildMessage}. */
export interface FixtureAttachment {
  /** File name written to Content-Disposition and Content-Type `name`. */
  filename: string;
  /** MIME type, e.g. `text/plain` or `image/png`. */
  contentType: string;
  /** Content; a string is UTF-8. Always written base64-encoded. */
  content: Buffer | string;
  /** (Default: `'attachment'`) */
  disposition?: 'attachment' | 'inline';
  /** Content-ID without angle brackets, for `cid:` references from the HTML. */
  contentId?: string;
}

/** Options for {@link buildMessage}. */
export interface BuildMessageOptions {
  /** `"Name <address>"` or a bare address; non-ASCII names are RFC 2047 encoded. (Default: `'Alice Example <alice@example.com>'`) */
  from?: string;
  /** (Default: `'bob@example.com'`) */
  to?: string | string[];
  /** Omitted when not given. */
  cc?: string | string[];
  /** Non-ASCII is RFC 2047 encoded. `null` omits the header. (Default: `'Test message'`) */
  subject?: string | null;
  /** A Date is written in RFC 5322 form, a string as given; `null` omits the header. (Default: 2024-01-01T12:00:00Z) */
  date?: Date | string | null;
  /** Written as `<messageId>` unless it already has brackets; `null` omits the header. (Default: derived from the content) */
  messageId?: string | null;
  /** Plain text body. (Default: `'Hello.\n'` when neither `text` nor `html` is given) */
  text?: string;
  /** HTML body; with `text` the message is multipart/alternative. */
  html?: string;
  /** Extra headers, written verbatim after the standard ones (e.g. List-Unsubscribe). */
  headers?: Record<string, string> | Array<[string, string]>;
  /** Base64 attachments; the message becomes multipart/mixed. */
  attachments?: FixtureAttachment[];
}

/** A 1×1 transparent PNG. */
export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

const CRLF = '\r\n';
// biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point of this test
const NON_ASCII = /[^\x00-\x7f]/;

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function encodeWord(value: string): string {
  return NON_ASCII.test(value) ? `=?UTF-8?B?${Buffer.from(value, 'utf8').toString('base64')}?=` : value;
}

function encodeAddress(value: string): string {
  const match = /^\s*(.*?)\s*<([^>]+)>\s*$/.exec(value);
  if (!match || match[1] === '') return value.trim();
  const name = match[1]!.replace(/^"(.*)"$/, '$1');
  const shown = NON_ASCII.test(name) ? encodeWord(name) : `"${name.replace(/(["\\])/g, '\\$1')}"`;
  return `${shown} <${match[2]}>`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 date in UTC, e.g. `Mon, 01 Jan 2024 12:00:00 +0000`. */
export function rfc5322Date(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

/** asctime form used on From_ lines, e.g. `Mon Jan  1 12:00:00 2024`. */
function asctime(d: Date): string {
  return (
    `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${d.getUTCFullYear()}`
  );
}

function crlfLines(text: string): string {
  const body = text.replace(/\r?\n/g, CRLF);
  return body.endsWith(CRLF) ? body : body + CRLF;
}

function base64Lines(content: Buffer): string {
  const b64 = content.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join(CRLF) + CRLF;
}

function textPart(type: 'plain' | 'html', content: string): string {
  const encoding = NON_ASCII.test(content) ? '8bit' : '7bit';
  return `Content-Type: text/${type}; charset=utf-8${CRLF}Content-Transfer-Encoding: ${encoding}${CRLF}${CRLF}${crlfLines(content)}`;
}

function multipart(subtype: string, boundary: string, parts: string[]): string {
  let out = `Content-Type: multipart/${subtype}; boundary="${boundary}"${CRLF}${CRLF}`;
  out += `This is a multi-part message in MIME format.${CRLF}`;
  for (const part of parts) out += `${CRLF}--${boundary}${CRLF}${part}`;
  return `${out}${CRLF}--${boundary}--${CRLF}`;
}

function attachmentPart(a: FixtureAttachment): string {
  const content = typeof a.content === 'string' ? Buffer.from(a.content, 'utf8') : a.content;
  const name = encodeWord(a.filename);
  let out = `Content-Type: ${a.contentType}; name="${name}"${CRLF}`;
  out += `Content-Disposition: ${a.disposition ?? 'attachment'}; filename="${name}"${CRLF}`;
  if (a.contentId) out += `Content-ID: <${a.contentId}>${CRLF}`;
  out += `Content-Transfer-Encoding: base64${CRLF}${CRLF}`;
  return out + base64Lines(content);
}

const asList = (v: string | string[]): string[] => (Array.isArray(v) ? v : [v]);

/**
 * Builds one RFC 5322 message with CRLF line endings (ending in CRLF). Text-only messages are
 * text/plain, text+html multipart/alternative, and attachments wrap either in multipart/mixed.
 */
export function buildMessage(options: BuildMessageOptions = {}): string {
  const from = options.from ?? 'Alice Example <alice@example.com>';
  const to = asList(options.to ?? 'bob@example.com');
  const subject = options.subject === undefined ? 'Test message' : options.subject;
  const date = options.date === undefined ? new Date('2024-01-01T12:00:00Z') : options.date;
  const text = options.text ?? (options.html === undefined ? 'Hello.\n' : undefined);
  const html = options.html;
  const attachments = options.attachments ?? [];
  const dateText = date === null ? null : typeof date === 'string' ? date : rfc5322Date(date);

  // Deterministic id and boundaries: derived from what the message says.
  const digest = sha256(JSON.stringify([from, to, subject, dateText, text, html, attachments.length]));
  const messageId = options.messageId === undefined ? `${digest.slice(0, 16)}@fixture.jobwire.test` : options.messageId;

  const head: string[] = [`From: ${encodeAddress(from)}`, `To: ${to.map(encodeAddress).join(', ')}`];
  if (options.cc !== undefined) head.push(`Cc: ${asList(options.cc).map(encodeAddress).join(', ')}`);
  if (subject !== null) head.push(`Subject: ${encodeWord(subject)}`);
  if (dateText !== null) head.push(`Date: ${dateText}`);
  if (messageId !== null) head.push(`Message-ID: ${messageId.startsWith('<') ? messageId : `<${messageId}>`}`);
  head.push('MIME-Version: 1.0');
  const extra = options.headers === undefined ? [] : Array.isArray(options.headers) ? options.headers : Object.entries(options.headers);
  for (const [name, value] of extra) head.push(`${name}: ${value}`);

  let body: string;
  if (text !== undefined && html !== undefined) {
    body = multipart('alternative', `=_alt_${digest.slice(0, 20)}`, [textPart('plain', text), textPart('html', html)]);
  } else if (html !== undefined) {
    body = textPart('html', html);
  } else {
    body = textPart('plain', text ?? '');
  }
  if (attachments.length > 0) {
    body = multipart('mixed', `=_mix_${digest.slice(20, 40)}`, [body, ...attachments.map(attachmentPart)]);
  }
  // `body` starts with its own Content-Type header line(s), so it continues the header block.
  return head.join(CRLF) + CRLF + body;
}

/** Options for {@link buildMbox}. */
export interface BuildMboxOptions {
  /** Total messages in the file, malformed and duplicates included. */
  count: number;
  /** Every Nth well-formed original message carries attachments; 0 for none. (Default: 5) */
  attachmentEvery?: number;
  /** How many messages have a garbage header block. (Default: 0) */
  malformed?: number;
  /** Put body lines starting with `From ` (and `>From `) into messages, quoted in the file. (Default: true) */
  fromQuoted?: boolean;
  /** PRNG seed; the same options always give the same bytes. (Default: 1) */
  seed?: number;
  /** How many messages repeat an earlier message's Message-ID. (Default: 0) */
  duplicates?: number;
  /** Date of the first message; later ones follow at irregular intervals. (Default: 2024-01-01T00:00:00Z) */
  startDate?: Date;
  /** Write the file with CRLF line endings instead of LF. (Default: false) */
  crlf?: boolean;
}

/** What {@link buildMbox} returns. */
export interface BuiltMbox {
  /** The mbox file. */
  mbox: Buffer;
  /** Each message's bytes in file order, exactly as a correct splitter returns them. */
  raw: Buffer[];
  /** What a correct import of `mbox` finds. */
  expected: {
    /** Messages in the file (From_ separator lines). */
    messages: number;
    /** Messages that parse. */
    valid: number;
    /** Messages that parseMessage rejects with MalformedMessageError. */
    malformed: number;
    /** Valid messages with at least one attachment. */
    withAttachments: number;
    /** Distinct dedup keys among valid messages. */
    unique: number;
  };
}

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SENDERS = [
  'Alice Example <alice@example.com>',
  'Bob Builder <bob@builder.example>',
  'José Álvarez <jose@correo.example.es>',
  'Zoë Ångström <zoe@example.se>',
  'noreply@notifications.example.net',
  'Weekly Digest <digest@news.example.org>',
  "Carol O'Neil <carol@example.co.uk>",
  'GitHub <notifications@github.example>',
  '李雷 <lilei@example.cn>',
  'Billing Team <billing@shop.example>',
];
const RECIPIENTS = ['me@jobwire.test', 'team@jobwire.test', 'ops@jobwire.test', 'Dana <dana@jobwire.test>'];
const SUBJECTS = [
  'Quarterly report',
  'Re: lunch on Friday?',
  'Your invoice #{n}',
  'Änderungen am Vertrag',
  'Build #{n} failed',
  'Weekly digest: {n} new items',
  'Fwd: photos from the trip',
  'Meeting notes {n}',
  'Réunion de lundi',
  'Password reset request',
];
const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by ' +
  'word but not what all were we when your can said there use an each which she do how their if will up ' +
  'other about out many then them these so some her would make like him into time has look two more write'
).split(' ');

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)]!;
}

function sentence(rnd: () => number): string {
  const n = 6 + Math.floor(rnd() * 10);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(pick(rnd, WORDS));
  const s = words.join(' ');
  return `${s.charAt(0).toUpperCase() + s.slice(1)}.`;
}

function paragraphs(rnd: () => number, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(rnd() * 4);
    const lines: string[] = [];
    for (let k = 0; k < n; k++) lines.push(sentence(rnd));
    out.push(lines.join('\n'));
  }
  return out;
}

/** Garbage that is not a header block, in a few flavours. */
function malformedMessage(rnd: () => number, k: number): Buffer {
  switch (k % 4) {
    case 0:
      return Buffer.from(`this is not a header line${CRLF}@@@@ garbage ${k} @@@@${CRLF}${CRLF}${sentence(rnd)}${CRLF}`);
    case 1:
      // Well-formed fields, but none that identify a message.
      return Buffer.from(`X-Junk: ${k}${CRLF}Content-Type: text/plain${CRLF}${CRLF}${sentence(rnd)}${CRLF}`);
    case 2:
      return Buffer.from(`   ${CRLF}\t${CRLF}`);
    default: {
      // Binary junk without newlines or colons, so it cannot look like a field or a From_ line.
      const bytes = Buffer.alloc(200 + Math.floor(rnd() * 200));
      for (let i = 0; i < bytes.length; i++) {
        let b = Math.floor(rnd() * 256);
        if (b === 0x0a || b === 0x0d || b === 0x3a) b = 0x2e;
        bytes[i] = b;
      }
      bytes[0] = 0x7f;
      return Buffer.concat([bytes, Buffer.from(CRLF)]);
    }
  }
}

/** Adds one `>` to every line matching `>*From ` (mboxrd quoting). Byte-preserving. */
function quoteFromLines(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/^(>*From )/gm, '>$1'), 'latin1');
}

/**
 * Builds a deterministic mbox of `count` messages: varied senders and subjects, text and
 * multipart/alternative bodies, base64 attachments (a text file and a tiny PNG) on every Nth
 * message, quoted `From ` body lines, `malformed` garbage messages and `duplicates` that reuse an
 * earlier Message-ID (some byte-identical, some with an extra Received header).
 */
export function buildMbox(options: BuildMboxOptions): BuiltMbox {
  const {
    count,
    attachmentEvery = 5,
    malformed = 0,
    fromQuoted = true,
    seed = 1,
    duplicates = 0,
    startDate = new Date('2024-01-01T00:00:00Z'),
    crlf = false,
  } = options;
  if (malformed < 0 || duplicates < 0 || count < 0) throw new RangeError('counts must be >= 0');
  if (malformed + duplicates > 0 && malformed + duplicates >= count) {
    throw new RangeError('count must exceed malformed + duplicates (a duplicate needs an original)');
  }
  const rnd = prng(seed);

  // Slot 0 is always an original, so every duplicate has an earlier message to copy.
  const kinds: Array<'original' | 'malformed' | 'duplicate'> = [];
  for (let i = 0; i < malformed; i++) kinds.push('malformed');
  for (let i = 0; i < duplicates; i++) kinds.push('duplicate');
  while (kinds.length < Math.max(count - 1, 0)) kinds.push('original');
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  if (count > 0) kinds.unshift('original');

  interface Original {
    bytes: Buffer;
    messageId: string | null;
    hasAttachments: boolean;
    date: Date;
  }
  const originals: Original[] = [];
  const raw: Buffer[] = [];
  const envelopes: Array<{ sender: string; date: Date }> = [];
  const keys = new Set<string>();
  let withAttachments = 0;
  let duplicateNo = 0;
  let malformedNo = 0;
  let time = startDate.getTime();
  let quotedPlaced = false;

  const toFile = (s: string): Buffer => Buffer.from(crlf ? s : s.replace(/\r\n/g, '\n'), 'utf8');
  const keyOf = (id: string | null, bytes: Buffer): string => (id !== null ? `mid:${id}` : `sha:${sha256(bytes)}`);

  for (let slot = 0; slot < count; slot++) {
    time += (5 + Math.floor(rnd() * 180)) * 60_000 + Math.floor(rnd() * 60) * 1000;
    const kind = kinds[slot]!;

    if (kind === 'malformed') {
      let bytes = malformedMessage(rnd, malformedNo++);
      if (!crlf) bytes = Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
      raw.push(bytes);
      envelopes.push({ sender: 'MAILER-DAEMON', date: new Date(time) });
      continue;
    }

    if (kind === 'duplicate') {
      const source = originals[Math.floor(rnd() * originals.length)]!;
      const exact = source.messageId === null || duplicateNo % 2 === 0;
      duplicateNo++;
      const bytes = exact
        ? source.bytes
        : Buffer.concat([toFile(`Received: from relay.example.net by mx.jobwire.test; ${rfc5322Date(new Date(time))}\r\n`), source.bytes]);
      raw.push(bytes);
      envelopes.push({ sender: 'duplicate@example.com', date: source.date });
      keys.add(keyOf(source.messageId, bytes));
      if (source.hasAttachments) withAttachments++;
      continue;
    }

    const n = originals.length;
    const date = new Date(time);
    const sender = pick(rnd, SENDERS);
    const to = [pick(rnd, RECIPIENTS)];
    if (rnd() < 0.3) to.push(pick(rnd, RECIPIENTS));
    const cc = rnd() < 0.25 ? [pick(rnd, RECIPIENTS)] : undefined;
    const subject = pick(rnd, SUBJECTS).replace('{n}', String(1000 + n));
    // Some real mail has no Message-ID; the first original always has one.
    const messageId = n > 0 && rnd() < 0.06 ? null : `${n}.${seed}.${Math.floor(rnd() * 1e9).toString(36)}@mail.example.org`;

    const paras = paragraphs(rnd, 2 + Math.floor(rnd() * 5));
    paras.unshift(`Message ${n} of the fixture.`);
    if (fromQuoted && (!quotedPlaced || rnd() < 0.25)) {
      quotedPlaced = true;
      paras.splice(1, 0, `From the desk of ${sender.replace(/<.*>/, '').trim()}:\n${sentence(rnd)}`);
      if (rnd() < 0.5) paras.push(`>From an earlier message, quoted.\n>>From deeper still.`);
    }
    const text = `${paras.join('\n\n')}\n`;
    const html =
      rnd() < 0.4
        ? `<html><body>${paras.map((p) => `<p>${p.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, '<br>')}</p>`).join('\n')}</body></html>`
        : undefined;
    const hasAttachments = attachmentEvery > 0 && (n + 1) % attachmentEvery === 0;
    const attachments: FixtureAttachment[] = hasAttachments
      ? [
          { filename: `notes-${n}.txt`, contentType: 'text/plain', content: `Notes for message ${n}\n${sentence(rnd)}\n` },
          ...(rnd() < 0.6 ? [{ filename: 'pixel.png', contentType: 'image/png', content: TINY_PNG }] : []),
        ]
      : [];
    const headers: Array<[string, string]> = [];
    if (/digest|noreply|github/i.test(sender)) {
      headers.push(['List-Unsubscribe', `<mailto:unsubscribe@news.example.org?subject=${n}>, <https://news.example.org/u/${n}>`]);
      headers.push(['List-Id', '<news.example.org>']);
    }
    if (rnd() < 0.3) headers.push(['X-Mailer', 'Jobwire Fixture 1.0']);

    const message = buildMessage({ from: sender, to, cc, subject, date, messageId, text, html, headers, attachments });
    const bytes = toFile(message);
    originals.push({ bytes, messageId, hasAttachments, date });
    raw.push(bytes);
    envelopes.push({ sender: /<([^>]+)>/.exec(sender)?.[1] ?? sender, date });
    keys.add(keyOf(messageId, bytes));
    if (hasAttachments) withAttachments++;
  }

  const eol = crlf ? '\r\n' : '\n';
  const pieces: Buffer[] = [];
  raw.forEach((bytes, i) => {
    const env = envelopes[i]!;
    pieces.push(Buffer.from(`From ${env.sender} ${asctime(env.date)}${eol}`, 'latin1'));
    pieces.push(quoteFromLines(bytes));
    // Blank line between messages, as mbox writers add it.
    pieces.push(Buffer.from(eol, 'latin1'));
  });

  return {
    mbox: Buffer.concat(pieces),
    raw,
    expected: {
      messages: count,
      valid: count - malformed,
      malformed,
      withAttachments,
      unique: keys.size,
    },
  };
}
