/**
 * A message parser thread (see src/mail/parser-thread.ts) that misbehaves on the messages that ask
 * it to, as a hostile message could make a parser do: `X-Test-Parser: loop` never returns,
 * `X-Test-Parser: hoard` fills the heap, `X-Test-Parser: crash` throws outside the parse,
 * `crash-later` is parsed and answered, then throws 50 ms later, and `slow` takes 200 ms to parse. Every other
 * message is parsed as the real thread does.
 */
import { parentPort } from 'node:worker_threads';
import { parseMessage } from '../../src/mail/parse-message.js';
import { serveParses } from '../../src/mail/parser-thread.js';

serveParses(parentPort!, async (raw) => {
  const header = raw.subarray(0, 200).toString('latin1');
  let spins = 0;
  if (header.includes('X-Test-Parser: loop')) for (;;) spins++;
  const hoard: number[][] = [];
  if (header.includes('X-Test-Parser: hoard')) for (;;) hoard.push(new Array(100_000).fill(spins++));
  if (header.includes('X-Test-Parser: crash\r\n'))
    setImmediate(() => {
      throw new Error('a crafted message broke the parser');
    });
  if (header.includes('X-Test-Parser: slow')) {
    const until = performance.now() + 200;
    while (performance.now() < until) spins++;
  }
  const parsed = await parseMessage(raw);
  // Armed once the parse is done, so the answer is sent first (on a fresh thread, under load, the
  // parse itself can take longer than 50 ms; the thread would then crash before answering).
  if (header.includes('X-Test-Parser: crash-later'))
    setTimeout(() => {
      throw new Error('a crafted message broke the parser after its answer');
    }, 50);
  return parsed;
});
