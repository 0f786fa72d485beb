import type { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { MalformedMessageError, parseMessage, type ParsedMessage } from '../../src/mail/parse-message.js';
import { MessageParserThread } from '../../src/mail/parser-thread.js';
import { buildMbox } from '../helpers/mbox-fixture.js';
import { waitFor } from '../helpers/wait.js';

/** What a parse gives: the message, or the error's class and text. */
async function outcome(parse: Promise<ParsedMessage>): Promise<ParsedMessage | { error: string; malformed: boolean; message: string }> {
  return parse.catch((error: Error) => ({ error: error.name, malformed: error instanceof MalformedMessageError, message: error.message }));
}

describe('the message parser thread', () => {
  const thread = new MessageParserThread();
  afterAll(() => thread.close());

  it('answers what parseMessage answers here, for every message of an mbox, all sent at once', async () => {
    const fixture = buildMbox({ count: 60, malformed: 4, attachmentEvery: 3, seed: 7, crlf: true });
    const odd = [
      'Subject: s\r\n__proto__: polluted\r\n\r\nbody\r\n',
      'Subject: no date\r\nDate: not a date\r\n\r\nbody\r\n',
      '',
      'no header at all\r\n\r\nbody',
    ].map((text) => Buffer.from(text, 'latin1'));
    const raws = [...fixture.raw, ...odd];
    const [there, here] = await Promise.all([
      Promise.all(raws.map((raw) => outcome(thread.parse(raw)))),
      Promise.all(raws.map((raw) => outcome(parseMessage(raw)))),
    ]);
    expect(there).toEqual(here);
    // What the comparison covers: attachments as Buffers, dates as Dates, refusals as MalformedMessageError.
    const parsed = there.filter((m): m is ParsedMessage => !('error' in m));
    expect(parsed.some((m) => m.attachments.length > 0 && m.attachments.every((a) => Buffer.isBuffer(a.content)))).toBe(true);
    expect(parsed.some((m) => m.date instanceof Date)).toBe(true);
    expect(there.filter((m) => 'error' in m && m.malformed)).toHaveLength(6);
    expect(Object.hasOwn(parsed.find((m) => m.subject === 's')!.headers, '__proto__')).toBe(true);
  });

  it('fails the parses a dying thread leaves, and starts another for the next', async () => {
    const parser = new MessageParserThread();
    const raw = buildMbox({ count: 1, seed: 3 }).raw[0]!;
    const first = parser.parse(raw).catch(() => null);
    // A request without bytes throws in the thread, outside any parse: the thread dies of it
    // before it reads the parse sent after it.
    threadOf(parser)!.postMessage({ id: -1 });
    await expect(parser.parse(raw)).rejects.toThrow(/reading 'buffer'/);
    await first;
    expect(await parser.parse(raw)).toEqual(await parseMessage(raw));
    await parser.close();
  });

  it('fails the parses waiting when it is closed, and starts another thread for the next', async () => {
    const parser = new MessageParserThread();
    const raw = buildMbox({ count: 1, seed: 5 }).raw[0]!;
    const waiting = parser.parse(raw);
    const closing = parser.close();
    await expect(waiting).rejects.toThrow(/closed/);
    expect(await parser.parse(raw)).toEqual(await parseMessage(raw));
    await closing;
    await parser.close();
  });

  it('ends its thread once idle, and starts another for the next parse', async () => {
    const parser = new MessageParserThread({ idleMs: 1 });
    const raw = buildMbox({ count: 1, seed: 4 }).raw[0]!;
    expect(await parser.parse(raw)).toEqual(await parseMessage(raw));
    await waitFor('the idle thread to end', () => threadOf(parser) === null);
    expect(await parser.parse(raw)).toEqual(await parseMessage(raw));
    await parser.close();
  });
});

describe('a hostile message on the parser thread', () => {
  /** The real entry, but a message saying `X-Test-Parser: loop` never returns and one saying `hoard` fills the heap. */
  const entry = new URL('../helpers/misbehaving-parser-entry.ts', import.meta.url);
  const hostile = (behaviour: string) => Buffer.from(`Subject: hostile\r\nX-Test-Parser: ${behaviour}\r\n\r\nbody\r\n`, 'latin1');

  for (const [behaviour, options, why] of [
    ['loop', { stallMs: 2_000 }, /could not be parsed within 2 s/],
    ['hoard', { maxHeapMb: 64 }, /needs more memory to parse than the parser may use/],
  ] as const) {
    it(`fails only the message at fault (${behaviour}) as malformed; the others held with it are answered`, async () => {
      const parser = new MessageParserThread({ entry, ...options });
      const raws = buildMbox({ count: 20, seed: 11 }).raw;
      raws.splice(6, 0, hostile(behaviour));
      const [there, here] = await Promise.all([
        Promise.all(raws.map((raw) => outcome(parser.parse(raw)))),
        Promise.all(raws.map((raw) => outcome(parseMessage(raw)))),
      ]);
      expect(there[6]).toMatchObject({ malformed: true, message: expect.stringMatching(why) });
      expect(there.toSpliced(6, 1)).toEqual(here.toSpliced(6, 1));
      // Parses asked for afterwards go on as usual.
      const next = buildMbox({ count: 3, seed: 12 }).raw;
      expect(await Promise.all(next.map((raw) => parser.parse(raw)))).toEqual(await Promise.all(next.map((raw) => parseMessage(raw))));
      await parser.close();
    });
  }
});

/** The thread a parser runs now (null: none). */
function threadOf(parser: MessageParserThread): Worker | null {
  return (parser as unknown as { thread: Worker | null }).thread;
}
