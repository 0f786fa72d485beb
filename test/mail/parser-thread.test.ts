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

  it('answers the parses a crashing thread held from a new thread, one at a time', async () => {
    const parser = new MessageParserThread();
    const raws = buildMbox({ count: 8, seed: 3 }).raw;
    // Ready: a crash from now on is one a message could have caused.
    expect(await parser.parse(raws[0]!)).toEqual(await parseMessage(raws[0]!));
    const held = raws.map((raw) => outcome(parser.parse(raw)));
    // A request without bytes throws in the thread, outside any parse.
    threadOf(parser)!.postMessage({ id: -1 });
    expect(await Promise.all(held)).toEqual(await Promise.all(raws.map((raw) => outcome(parseMessage(raw)))));
    await parser.close();
  });

  it("fails the parses waiting on a thread that cannot load, as no message's fault, and tries again for the next", async () => {
    const parser = new MessageParserThread({ entry: new URL('../helpers/unloadable-parser-entry.ts', import.meta.url) });
    const raw = buildMbox({ count: 1, seed: 3 }).raw[0]!;
    for (let attempt = 0; attempt < 2; attempt++) {
      expect(await outcome(parser.parse(raw))).toMatchObject({ malformed: false, message: expect.stringMatching(/could not be loaded/) });
    }
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
    ['crash', {}, /made the parser fail \(a crafted message broke the parser\)/],
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

describe('blame', () => {
  const entry = new URL('../helpers/misbehaving-parser-entry.ts', import.meta.url);
  const message = (behaviour: string) => Buffer.from(`Subject: ${behaviour}\r\nX-Test-Parser: ${behaviour}\r\n\r\nbody\r\n`, 'latin1');

  it('falls on the message that crashes a thread alone, not on the next one after a crash left behind', async () => {
    const parser = new MessageParserThread({ entry });
    const [good] = buildMbox({ count: 1, seed: 17 }).raw;
    expect(await parser.parse(good!)).toEqual(await parseMessage(good!));
    // Sent at once: the crash ends the thread and they are isolated, one at a time; the second
    // is answered, then its thread crashes while the third (slow, but sound) is parsed.
    const raws = [good!, message('crash'), message('crash-later'), message('slow'), good!];
    const there = await Promise.all(raws.map((raw) => outcome(parser.parse(raw))));
    expect(there[1]).toMatchObject({ malformed: true, message: expect.stringMatching(/made the parser fail/) });
    expect(there.toSpliced(1, 1)).toEqual(await Promise.all(raws.toSpliced(1, 1).map((raw) => outcome(parseMessage(raw)))));
    await parser.close();
  });

  it('fails a parse whose bytes cannot be copied, and starts no thread for it', async () => {
    const parser = new MessageParserThread();
    const unreadable = {
      get length(): number {
        throw new RangeError('Array buffer allocation failed');
      },
    } as unknown as Buffer;
    await expect(parser.parse(unreadable)).rejects.toThrow(/allocation failed/);
    expect(threadOf(parser)).toBeNull();
  });
});

describe('the stall watch', () => {
  it('takes an answer that came while this thread was busy past the deadline, and blames only the stuck message', async () => {
    const entry = new URL('../helpers/misbehaving-parser-entry.ts', import.meta.url);
    const parser = new MessageParserThread({ entry, stallMs: 1_000 });
    const [first, second] = buildMbox({ count: 2, seed: 13 }).raw;
    expect(await parser.parse(first!)).toEqual(await parseMessage(first!));
    const stuck = outcome(parser.parse(Buffer.from('Subject: hostile\r\nX-Test-Parser: loop\r\n\r\nbody\r\n', 'latin1')));
    const answered = outcome(parser.parse(second!));
    // This thread is busy past the deadline while the answer for `second` waits to be read.
    await new Promise((resolve) =>
      setImmediate(() => {
        const until = performance.now() + 1_500;
        while (performance.now() < until);
        resolve(undefined);
      }),
    );
    expect(await answered).toEqual(await parseMessage(second!));
    expect(await stuck).toMatchObject({ malformed: true, message: expect.stringMatching(/could not be parsed within 1 s/) });
    await parser.close();
  });
});

/** The thread a parser runs now (null: none). */
function threadOf(parser: MessageParserThread): Worker | null {
  return (parser as unknown as { thread: Worker | null }).thread;
}
