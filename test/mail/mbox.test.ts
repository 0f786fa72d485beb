import { describe, it, expect } from 'vitest';
import { countMboxMessages, splitMbox, type MboxChunk } from '../../src/mail/mbox.js';
import { buildMbox } from '../helpers/mbox-fixture.js';

async function* whole(data: MboxChunk): AsyncGenerator<MboxChunk> {
  yield data;
}

async function* fixedChunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/** Chunks of 1..maxSize bytes from a seeded PRNG, so a failure is reproducible. */
async function* randomChunks(data: Buffer, seed: number, maxSize: number): AsyncGenerator<Buffer> {
  let state = seed;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state;
  };
  for (let i = 0; i < data.length; ) {
    const size = 1 + (next() % maxSize);
    yield data.subarray(i, i + size);
    i += size;
  }
}

async function collect(source: AsyncIterable<MboxChunk>): Promise<string[]> {
  const out: string[] = [];
  for await (const message of splitMbox(source)) out.push(message.toString('utf8'));
  return out;
}

async function collectBuffers(source: AsyncIterable<MboxChunk>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const message of splitMbox(source)) out.push(message);
  return out;
}

/** Splits `text` whole and in 1-, 2-, 3-, 7-byte chunks; all must agree, count included. */
async function splitEveryWay(text: string): Promise<string[]> {
  const data = Buffer.from(text, 'utf8');
  const expected = await collect(whole(data));
  for (const size of [1, 2, 3, 7]) {
    expect(await collect(fixedChunks(data, size)), `chunk size ${size}`).toEqual(expected);
    expect(await countMboxMessages(fixedChunks(data, size)), `count, chunk size ${size}`).toBe(expected.length);
  }
  expect(await countMboxMessages(whole(data))).toBe(expected.length);
  return expected;
}

describe('splitMbox on generated fixtures', () => {
  const fixture = buildMbox({ count: 60, malformed: 4, duplicates: 3, attachmentEvery: 4, seed: 42 });

  it('yields every message, byte for byte', async () => {
    const messages = await collectBuffers(whole(fixture.mbox));
    expect(messages).toHaveLength(fixture.expected.messages);
    expect(messages.length).toBe(60);
    messages.forEach((m, i) => expect(m.equals(fixture.raw[i]!), `message ${i}`).toBe(true));
  });

  it('gives the same result for 1-byte, 7-byte and random chunks', async () => {
    const reference = await collectBuffers(whole(fixture.mbox));
    const variants = [
      await collectBuffers(fixedChunks(fixture.mbox, 1)),
      await collectBuffers(fixedChunks(fixture.mbox, 7)),
      await collectBuffers(randomChunks(fixture.mbox, 1, 50)),
      await collectBuffers(randomChunks(fixture.mbox, 2, 5000)),
    ];
    for (const variant of variants) {
      expect(variant).toHaveLength(reference.length);
      variant.forEach((m, i) => expect(m.equals(reference[i]!), `message ${i}`).toBe(true));
    }
  });

  it('un-quotes >From lines that the file had to quote', async () => {
    expect(fixture.mbox.toString('utf8')).toMatch(/\n>From the desk of /);
    const messages = await collect(whole(fixture.mbox));
    const withFrom = messages.filter((m) => /\nFrom the desk of /.test(m));
    expect(withFrom.length).toBeGreaterThan(0);
    // No message may still carry the file's quoting.
    expect(messages.some((m) => /\n>From the desk of /.test(m))).toBe(false);
  });

  it('handles a CRLF file the same way', async () => {
    const crlf = buildMbox({ count: 30, malformed: 2, duplicates: 2, seed: 9, crlf: true });
    expect(crlf.mbox.includes('\r\nFrom ')).toBe(true);
    const messages = await collectBuffers(randomChunks(crlf.mbox, 3, 300));
    expect(messages).toHaveLength(30);
    messages.forEach((m, i) => expect(m.equals(crlf.raw[i]!), `message ${i}`).toBe(true));
    expect(messages[0]!.toString('latin1')).toMatch(/\r\n$/);
    expect(messages[0]!.toString('latin1')).not.toMatch(/\r\n\r\n$/);
  });

  it('counts what it splits, for any chunking', async () => {
    const big = buildMbox({ count: 300, malformed: 7, duplicates: 5, seed: 5 });
    expect(await countMboxMessages(whole(big.mbox))).toBe(300);
    expect(await countMboxMessages(fixedChunks(big.mbox, 7))).toBe(300);
    expect(await countMboxMessages(randomChunks(big.mbox, 11, 100))).toBe(300);
    let split = 0;
    for await (const _ of splitMbox(fixedChunks(big.mbox, 4096))) split++;
    expect(split).toBe(300);
  });

  it('is deterministic per seed', () => {
    const a = buildMbox({ count: 20, seed: 3, malformed: 1, duplicates: 1 });
    const b = buildMbox({ count: 20, seed: 3, malformed: 1, duplicates: 1 });
    const c = buildMbox({ count: 20, seed: 4, malformed: 1, duplicates: 1 });
    expect(a.mbox.equals(b.mbox)).toBe(true);
    expect(a.mbox.equals(c.mbox)).toBe(false);
  });
});

describe('splitMbox edge cases', () => {
  it('un-quotes one > per line, mboxo and mboxrd alike', async () => {
    const text =
      'From a@x Mon Jan  1 00:00:00 2024\n' +
      'Subject: q\n\n' +
      '>From one\n' +
      '>>From two\n' +
      '>>>From three\n' +
      '>Fromage is not quoted\n' +
      '> From neither\n' +
      'text >From mid-line stays\n' +
      '>From\n';
    const [message] = await splitEveryWay(text);
    expect(message).toBe(
      'Subject: q\n\n' +
        'From one\n' +
        '>From two\n' +
        '>>From three\n' +
        '>Fromage is not quoted\n' +
        '> From neither\n' +
        'text >From mid-line stays\n' +
        '>From\n',
    );
  });

  it('splits only on From_ at the start of a line', async () => {
    const text =
      'From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nsays From here and\nFromage\n\n' +
      'From b@x Mon Jan  1 00:00:01 2024\nSubject: 2\n\nbody\n';
    const messages = await splitEveryWay(text);
    expect(messages).toEqual(['Subject: 1\n\nsays From here and\nFromage\n', 'Subject: 2\n\nbody\n']);
  });

  it('handles CRLF line endings and drops the blank separator line', async () => {
    const text =
      'From a@x Mon Jan  1 00:00:00 2024\r\nSubject: 1\r\n\r\n>From x\r\nline\r\n\r\n' +
      'From b@x Mon Jan  1 00:00:01 2024\r\nSubject: 2\r\n\r\nbody\r\n\r\n';
    const messages = await splitEveryWay(text);
    expect(messages).toEqual(['Subject: 1\r\n\r\nFrom x\r\nline\r\n', 'Subject: 2\r\n\r\nbody\r\n']);
  });

  it('accepts a file without trailing newline', async () => {
    const messages = await splitEveryWay('From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nlast line');
    expect(messages).toEqual(['Subject: 1\n\nlast line']);
  });

  it('keeps an unfinished last line that only looks like the start of From', async () => {
    const messages = await splitEveryWay('From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\n>>Fro');
    expect(messages).toEqual(['Subject: 1\n\n>>Fro']);
  });

  it('ignores a leading empty line (LF and CRLF)', async () => {
    expect(await splitEveryWay('\nFrom a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nhi\n')).toEqual(['Subject: 1\n\nhi\n']);
    expect(await splitEveryWay('\r\n \r\nFrom a@x Mon Jan  1 00:00:00 2024\r\nSubject: 1\r\n\r\nhi\r\n')).toEqual([
      'Subject: 1\r\n\r\nhi\r\n',
    ]);
  });

  it('yields non-blank text before the first From_ line instead of dropping it', async () => {
    const messages = await splitEveryWay('Subject: stray\n\nno envelope\nFrom a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nhi\n');
    expect(messages).toEqual(['Subject: stray\n\nno envelope\n', 'Subject: 1\n\nhi\n']);
  });

  it('yields empty messages for adjacent From_ lines and a From_ line at EOF', async () => {
    const messages = await splitEveryWay(
      'From a@x Mon Jan  1 00:00:00 2024\nFrom b@x Mon Jan  1 00:00:00 2024\nSubject: 2\n\nx\n\nFrom c@x Mon Jan  1 00:00:00 2024',
    );
    expect(messages).toEqual(['', 'Subject: 2\n\nx\n', '']);
  });

  it('yields nothing for an empty or blank file', async () => {
    expect(await splitEveryWay('')).toEqual([]);
    expect(await splitEveryWay('\n\r\n  \n')).toEqual([]);
  });

  it('accepts string and Uint8Array chunks', async () => {
    const text = 'From a@x Mon Jan  1 00:00:00 2024\nSubject: é\n\n>From x\n\nFrom b@x Mon Jan  1 00:00:00 2024\nSubject: 2\n\ny\n';
    async function* strings(): AsyncGenerator<string> {
      for (let i = 0; i < text.length; i += 5) yield text.slice(i, i + 5);
    }
    async function* arrays(): AsyncGenerator<Uint8Array> {
      const bytes = new TextEncoder().encode(text);
      for (let i = 0; i < bytes.length; i += 4) yield bytes.slice(i, i + 4);
    }
    const expected = ['Subject: é\n\nFrom x\n', 'Subject: 2\n\ny\n'];
    expect(await collect(strings())).toEqual(expected);
    expect(await collect(arrays())).toEqual(expected);
    expect(await countMboxMessages(strings())).toBe(2);
  });

  it('streams: the first message arrives before the source is drained', async () => {
    const fixture = buildMbox({ count: 50, seed: 8 });
    let pulled = 0;
    const total = Math.ceil(fixture.mbox.length / 1024);
    async function* counted(): AsyncGenerator<Buffer> {
      for (let i = 0; i < fixture.mbox.length; i += 1024) {
        pulled++;
        yield fixture.mbox.subarray(i, i + 1024);
      }
    }
    const iterator = splitMbox(counted());
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect((first.value as Buffer).equals(fixture.raw[0]!)).toBe(true);
    expect(pulled).toBeLessThan(total / 4);
    await iterator.return(undefined);
  });

  it('does not alias the caller’s chunks', async () => {
    const data = Buffer.from('From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nhi\n');
    const [message] = await collectBuffers(whole(data));
    data.fill(0x41);
    expect(message!.toString()).toBe('Subject: 1\n\nhi\n');
  });
});

describe('splitMbox with maxMessageBytes', () => {
  const FROM_LINE = 'From a@x Mon Jan  1 00:00:00 2024';
  const message = (subject: string, bodyBytes: number, eol = '\n') => {
    const head = `Subject: ${subject}${eol}${eol}`;
    return head + 'y'.repeat(bodyBytes - head.length - eol.length) + eol;
  };
  const mboxOf = (messages: string[], eol = '\n') => messages.map((m) => `${FROM_LINE}${eol}${m}${eol}`).join('');

  async function entries(source: AsyncIterable<MboxChunk>, maxMessageBytes: number) {
    const out: (string | { raw: null; size: number })[] = [];
    for await (const entry of splitMbox(source, { maxMessageBytes })) {
      out.push(Buffer.isBuffer(entry) ? entry.toString('latin1') : entry);
    }
    return out;
  }

  it('keeps a message of exactly the cap and skips one a byte over, in place, for any chunking', async () => {
    for (const eol of ['\n', '\r\n']) {
      const exact = message('exact', 500, eol);
      const over = message('over', 501, eol);
      const small = message('small', 40, eol);
      const data = Buffer.from(mboxOf([small, over, exact, small], eol), 'latin1');
      const expected = [small, { raw: null, size: expect.any(Number) }, exact, small];
      expect(await entries(whole(data), 500)).toEqual(expected);
      expect(await entries(fixedChunks(data, 1), 500)).toEqual(expected);
      expect(await entries(fixedChunks(data, 7), 500)).toEqual(expected);
      expect(await entries(randomChunks(data, 5, 300), 500)).toEqual(expected);
      expect(await countMboxMessages(fixedChunks(data, 7))).toBe(4);
    }
  });

  it('reports the size of the skipped message, at least the cap', async () => {
    const data = Buffer.from(mboxOf([message('big', 10_000), message('small', 40)]), 'latin1');
    const [big, small] = await entries(fixedChunks(data, 64), 1_000);
    expect(big).toEqual({ raw: null, size: expect.any(Number) });
    expect((big as { size: number }).size).toBeGreaterThanOrEqual(10_000);
    expect(small).toBe(message('small', 40));
  });

  it('does not hold a skipped message: the next one arrives while the big one is still streaming', async () => {
    // 200 MB of one message, produced lazily: a scanner that kept it would need 200 MB; this one
    // only ever sees 64 KiB chunks and lets each go.
    const chunk = Buffer.alloc(64 * 1024, 'z');
    async function* source(): AsyncGenerator<Buffer> {
      yield Buffer.from(`${FROM_LINE}\nSubject: big\n\n`);
      for (let i = 0; i < 3200; i++) yield chunk;
      yield Buffer.from(`\n\n${FROM_LINE}\nSubject: after\n\nok\n`);
    }
    const before = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const out: unknown[] = [];
    for await (const entry of splitMbox(source(), { maxMessageBytes: 1024 * 1024 })) {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
      out.push(Buffer.isBuffer(entry) ? entry.toString() : entry);
    }
    expect(out).toEqual([{ raw: null, size: expect.any(Number) }, 'Subject: after\n\nok\n']);
    expect((out[0] as { size: number }).size).toBeGreaterThan(200 * 1024 * 1024);
    expect(peak).toBeLessThan(64 * 1024 * 1024);
  });

  it('without the option yields Buffers only, as before', async () => {
    const data = Buffer.from(mboxOf([message('big', 10_000)]), 'latin1');
    const [only] = await collectBuffers(whole(data));
    expect(Buffer.isBuffer(only)).toBe(true);
    expect(only!.length).toBe(10_000);
  });
});
