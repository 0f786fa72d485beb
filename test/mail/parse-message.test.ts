import { createHash } from 'node:crypto';
import { describe, it, expect } from 'vitest';
import { splitMbox } from '../../src/mail/mbox.js';
import { MalformedMessageError, dedupKey, parseMessage, type ParsedMessage } from '../../src/mail/parse-message.js';
import { TINY_PNG, buildMbox, buildMessage } from '../helpers/mbox-fixture.js';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const parse = (raw: string): Promise<ParsedMessage> => parseMessage(Buffer.from(raw, 'utf8'));

async function expectMalformed(raw: Buffer | string): Promise<MalformedMessageError> {
  const error: unknown = await parseMessage(typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MalformedMessageError);
  expect((error as Error).name).toBe('MalformedMessageError');
  return error as MalformedMessageError;
}

describe('parseMessage', () => {
  it('reads addresses, subject, date, size and hash', async () => {
    const raw = buildMessage({
      from: 'José Álvarez <jose@example.es>',
      to: ['bob@example.com', 'Carol <carol@example.com>'],
      cc: 'Dana <dana@example.com>',
      subject: 'Réunion de lundi',
      date: new Date('2024-03-04T05:06:07Z'),
      messageId: 'abc.123@example.es',
    });
    const m = await parse(raw);
    expect(m.from).toEqual({ address: 'jose@example.es', name: 'José Álvarez' });
    expect(m.to).toEqual(['bob@example.com', 'carol@example.com']);
    expect(m.cc).toEqual(['dana@example.com']);
    expect(m.subject).toBe('Réunion de lundi');
    expect(m.date?.toISOString()).toBe('2024-03-04T05:06:07.000Z');
    expect(m.messageId).toBe('abc.123@example.es');
    expect(m.size).toBe(Buffer.byteLength(raw));
    expect(m.contentHash).toBe(sha256(raw));
    expect(m.attachments).toEqual([]);
  });

  it('gives a null name for a bare address and flattens groups and repeated headers', async () => {
    const raw =
      'From: alice@example.com\r\nTo: Friends: a@x.test, b@y.test;, c@z.test\r\nTo: d@w.test\r\n' + 'Subject: groups\r\n\r\nhi\r\n';
    const m = await parse(raw);
    expect(m.from).toEqual({ address: 'alice@example.com', name: null });
    expect(m.to).toEqual(['a@x.test', 'b@y.test', 'c@z.test', 'd@w.test']);
    expect(m.cc).toEqual([]);
  });

  it('returns attachments with filename, type, size, content and sha256', async () => {
    const notes = 'Line one\nLine two\n';
    const raw = buildMessage({
      text: 'See attached.\n',
      attachments: [
        { filename: 'notes.txt', contentType: 'text/plain', content: notes },
        { filename: 'pixel.png', contentType: 'image/png', content: TINY_PNG },
        { filename: 'Übersicht.txt', contentType: 'text/plain', content: 'ü' },
      ],
    });
    const m = await parse(raw);
    expect(m.textBody).toBe('See attached.\n');
    expect(m.attachments.map((a) => a.filename)).toEqual(['notes.txt', 'pixel.png', 'Übersicht.txt']);
    const [txt, png, umlaut] = m.attachments;
    expect(txt!.contentType).toBe('text/plain');
    expect(txt!.content.toString('utf8')).toBe(notes);
    expect(txt!.size).toBe(Buffer.byteLength(notes));
    expect(txt!.contentHash).toBe(sha256(notes));
    expect(png!.contentType).toBe('image/png');
    expect(png!.content.equals(TINY_PNG)).toBe(true);
    expect(png!.size).toBe(TINY_PNG.length);
    expect(png!.contentHash).toBe(sha256(TINY_PNG));
    expect(umlaut!.size).toBe(2);
  });

  it('reports a null filename when the part names none', async () => {
    const raw =
      'From: a@x.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
      '--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n' +
      '--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n' +
      'Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n';
    const m = await parse(raw);
    expect(m.attachments).toHaveLength(1);
    expect(m.attachments[0]!.filename).toBeNull();
    expect([...m.attachments[0]!.content]).toEqual([0, 1, 2]);
  });

  it('separates text and html bodies', async () => {
    const both = await parse(buildMessage({ text: 'Plain words\n', html: '<p>Rich <b>words</b></p>' }));
    expect(both.textBody).toBe('Plain words\n');
    expect(both.htmlBody).toContain('<p>Rich <b>words</b></p>');

    const htmlOnly = await parse(buildMessage({ html: '<p>Only html</p>' }));
    expect(htmlOnly.htmlBody).toContain('<p>Only html</p>');
    expect(htmlOnly.textBody).toBeNull();

    const textOnly = await parse(buildMessage({ text: 'Only text\n' }));
    expect(textOnly.textBody).toBe('Only text\n');
    expect(textOnly.htmlBody).toBeNull();
  });

  it('keeps cid: links in html rather than inlining images', async () => {
    const m = await parse(
      buildMessage({
        text: 'x\n',
        html: '<img src="cid:px@fixture">',
        attachments: [
          { filename: 'pixel.png', contentType: 'image/png', content: TINY_PNG, disposition: 'inline', contentId: 'px@fixture' },
        ],
      }),
    );
    expect(m.htmlBody).toContain('cid:px@fixture');
    expect(m.htmlBody).not.toContain('data:image/png');
  });

  it('normalises the Message-ID', async () => {
    const withId = (header: string): Promise<ParsedMessage> => parse(`From: a@x.test\r\n${header}\r\nSubject: s\r\n\r\nbody\r\n`);
    expect((await withId('Message-ID: <abc@x.test>')).messageId).toBe('abc@x.test');
    expect((await withId('Message-ID:    <abc@x.test>   ')).messageId).toBe('abc@x.test');
    expect((await withId('Message-Id:\r\n  <folded@x.test>')).messageId).toBe('folded@x.test');
    expect((await withId('message-id: no-brackets@x.test')).messageId).toBe('no-brackets@x.test');
    expect((await withId('Message-ID: < spaced @x.test >')).messageId).toBe('spaced@x.test');
    expect((await withId('Message-ID: <c@x.test> (added by relay)')).messageId).toBe('c@x.test');
    expect((await withId('Message-ID: <>')).messageId).toBeNull();
    expect((await withId('X-Other: 1')).messageId).toBeNull();
  });

  it('keeps every header as a raw string: lowercase name, first occurrence, unfolded', async () => {
    const raw = buildMessage({
      subject: 'Grüße',
      headers: [
        ['List-Unsubscribe', '<mailto:u@news.test>,\r\n <https://news.test/u/1>'],
        ['X-Repeated', 'first'],
        ['X-Repeated', 'second'],
        ['X-Utf8', 'naïve'],
      ],
    });
    const m = await parse(raw);
    expect(m.headers['list-unsubscribe']).toBe('<mailto:u@news.test>, <https://news.test/u/1>');
    expect(m.headers['x-repeated']).toBe('first');
    expect(m.headers['x-utf8']).toBe('naïve');
    // Encoded words stay raw here; `subject` has the decoded text.
    expect(m.headers.subject).toMatch(/^=\?UTF-8\?B\?/);
    expect(m.subject).toBe('Grüße');
    expect(m.headers.date).toBe('Mon, 01 Jan 2024 12:00:00 +0000');
    expect(m.headers['mime-version']).toBe('1.0');
    for (const value of Object.values(m.headers)) expect(typeof value).toBe('string');
  });

  it('treats a header named __proto__ as data', async () => {
    const m = await parse('Subject: s\r\n__proto__: polluted\r\n\r\nbody\r\n');
    expect(Object.hasOwn(m.headers, '__proto__')).toBe(true);
    // biome-ignore lint/suspicious/noProto: the test proves a header named __proto__ stays a plain key
    expect(m.headers.__proto__).toBe('polluted');
    expect(Object.getPrototypeOf(m.headers)).toBe(Object.prototype);
  });

  it('returns a null date when it is missing or unparseable (mailparser would say "now")', async () => {
    expect((await parse(buildMessage({ date: 'not a date at all' }))).date).toBeNull();
    expect((await parse(buildMessage({ date: null }))).date).toBeNull();
    const dated = await parse(buildMessage({ date: 'Tue, 2 Jan 2024 10:00:00 -0500 (EST)' }));
    expect(dated.date?.toISOString()).toBe('2024-01-02T15:00:00.000Z');
  });

  it('accepts a message with only one identifying header, and LF line endings', async () => {
    const m = await parse('Subject: just this\n\nbody\n');
    expect(m.subject).toBe('just this');
    expect(m.from).toBeNull();
    expect(m.messageId).toBeNull();
    expect(m.textBody).toBe('body\n');
  });

  describe('malformed input', () => {
    it('rejects empty and whitespace-only messages', async () => {
      expect((await expectMalformed(Buffer.alloc(0))).message).toMatch(/empty/);
      expect((await expectMalformed(' \r\n\t\r\n\n')).message).toMatch(/empty/);
      expect((await expectMalformed(Buffer.from([0x20, 0xa0, 0x0b, 0x0c, 0x0d, 0x0a]))).message).toMatch(/empty/);
    });

    it('rejects a message whose header block is megabytes long as malformed, not as a crash', async () => {
      const raw = Buffer.from(`Subject: many fields\r\n${'X-Filler: 0123456789abcdef\r\n'.repeat(100_000)}`, 'latin1');
      expect((await expectMalformed(raw)).message).toMatch(/could not be parsed: Max header size/);
    });

    it('rejects a header block without any Name: value field', async () => {
      const garbage = await expectMalformed('this is not a header\r\n@@@ garbage @@@\r\n\r\nFrom: a@x.test\r\n');
      expect(garbage.message).toMatch(/no header fields/);
      const bodyOnly = await expectMalformed('\r\nFrom: a@x.test\r\nSubject: the headers are in the body\r\n');
      expect(bodyOnly.message).toMatch(/no header fields/);
      const junk = Buffer.alloc(300, 0x7f);
      junk[10] = 0xff;
      await expectMalformed(junk);
    });

    it('rejects header fields without From, Date, Message-ID or Subject', async () => {
      const error = await expectMalformed('X-Junk: 1\r\nContent-Type: text/plain\r\n\r\nbody\r\n');
      expect(error.message).toMatch(/From, Date, Message-ID or Subject/);
    });

    it('tolerates stray lines next to real fields', async () => {
      const m = await parse('junk line without colon\r\nFrom: a@x.test\r\n\r\nbody\r\n');
      expect(m.from?.address).toBe('a@x.test');
    });
  });
});

describe('dedupKey', () => {
  it('prefers the Message-ID and falls back to the content hash', () => {
    expect(dedupKey({ messageId: 'abc@x.test', contentHash: 'ff' })).toBe('mid:abc@x.test');
    expect(dedupKey({ messageId: null, contentHash: 'ff00' })).toBe('sha:ff00');
  });

  it('matches copies that differ in bytes but share a Message-ID', async () => {
    const original = buildMessage({ messageId: 'same@x.test', text: 'one\n' });
    const relayed = `Received: from relay by mx; Mon, 1 Jan 2024 12:00:00 +0000\r\n${original}`;
    const a = await parse(original);
    const b = await parse(relayed);
    expect(a.contentHash).not.toBe(b.contentHash);
    expect(dedupKey(a)).toBe(dedupKey(b));
    const c = await parse(buildMessage({ messageId: null, text: 'one\n' }));
    const d = await parse(buildMessage({ messageId: null, text: 'two\n' }));
    expect(dedupKey(c)).toBe(`sha:${c.contentHash}`);
    expect(dedupKey(c)).not.toBe(dedupKey(d));
  });
});

describe('a generated mbox, split and parsed', () => {
  it('finds what the fixture says it holds', async () => {
    const fixture = buildMbox({ count: 120, malformed: 6, duplicates: 5, attachmentEvery: 3, seed: 11 });
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < fixture.mbox.length; i += 4096) yield fixture.mbox.subarray(i, i + 4096);
    }
    let valid = 0;
    let malformed = 0;
    let withAttachments = 0;
    let quotedFromLines = 0;
    const keys = new Set<string>();
    for await (const raw of splitMbox(source())) {
      try {
        const m = await parseMessage(raw);
        valid++;
        if (m.attachments.length > 0) withAttachments++;
        if (m.textBody?.includes('\nFrom the desk of ')) quotedFromLines++;
        keys.add(dedupKey(m));
      } catch (error) {
        if (!(error instanceof MalformedMessageError)) throw error;
        malformed++;
      }
    }
    expect({ valid, malformed, withAttachments, unique: keys.size }).toEqual({
      valid: fixture.expected.valid,
      malformed: fixture.expected.malformed,
      withAttachments: fixture.expected.withAttachments,
      unique: fixture.expected.unique,
    });
    expect(malformed).toBe(6);
    expect(withAttachments).toBeGreaterThan(0);
    expect(keys.size).toBeLessThan(valid);
    expect(quotedFromLines).toBeGreaterThan(0);
  });
});
