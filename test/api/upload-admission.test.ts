/**
 * Uploads are admitted before a byte of them is read (a hostile probe made a replica hold 100 MB
 * per request, unauthenticated): a token is required at once, and a user or a replica sends only
 * so many at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadsInFlight } from '../../src/observability/metrics.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let alice: string;
let bob: string;
let carol: string;

beforeAll(async () => {
  env = await createTestEnv({ MAX_CONCURRENT_UPLOADS: '3' });
  system = await startInProcess(env, { worker: false });
  [alice, bob, carol] = await Promise.all([env.token('alice'), env.token('bob'), env.token('carol')]);
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

const BOUNDARY = 'jobwire-test-boundary';

/**
 * A multipart upload whose body starts and then stalls until `finish` (or `abort`) is called: what
 * the server answers before the body ends, it answered without reading it.
 */
function stalledUpload(token: string | null) {
  let push!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      push = controller;
      controller.enqueue(
        new TextEncoder().encode(
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{"query":"{ __typename }"}\r\n--${BOUNDARY}\r\n` +
            `Content-Disposition: form-data; name="map"\r\n\r\n{}\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="0"; filename="a.mbox"\r\n\r\n`,
        ),
      );
    },
  });
  const aborted = new AbortController();
  const response = fetch(system.url, {
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
      'x-graphql-yoga-csrf': '1',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body,
    duplex: 'half',
    signal: aborted.signal,
  } as RequestInit);
  response.catch(() => {});
  return {
    response,
    finish() {
      push.enqueue(new TextEncoder().encode(`From a@b\r\n\r\n--${BOUNDARY}--\r\n`));
      push.close();
    },
    abort: () => aborted.abort(),
  };
}

describe('uploads', () => {
  it('are refused without a valid token before their body is read', async () => {
    for (const token of [null, 'not-a-jwt']) {
      const upload = stalledUpload(token);
      const response = await upload.response;
      expect(response.status).toBe(401);
      expect((await response.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');
      upload.abort();
    }
  });

  it('are read a few at a time per user and per replica; the others wait their turn unread, in order', async () => {
    const reading = async () => (await uploadsInFlight.get()).values[0]?.value ?? 0;
    const alices = [stalledUpload(alice), stalledUpload(alice)];
    const bobs = stalledUpload(bob);
    await waitFor('three uploads to be read', async () => (await reading()) === 3);
    // The replica reads three at once: carol's and alice's third wait, unread.
    const carols = stalledUpload(carol);
    const alicesThird = stalledUpload(alice);
    carols.finish();
    alicesThird.finish();

    // Alice's first is done: its turn goes to carol, who waited first (alice already has her two).
    alices[0]!.finish();
    expect((await alices[0]!.response).status).toBe(200);
    expect((await carols.response).status).toBe(200);
    expect((await alicesThird.response).status).toBe(200);
    for (const upload of [alices[1]!, bobs]) upload.finish();
    expect((await Promise.all([alices[1]!.response, bobs.response])).map((response) => response.status)).toEqual([200, 200]);
    await waitFor('every turn to be free', async () => (await reading()) === 0);

    // One its client gives up on frees its turn too.
    const dropped = stalledUpload(alice);
    await waitFor('the upload to be read', async () => (await reading()) === 1);
    dropped.abort();
    await waitFor('the dropped upload to free its turn', async () => (await reading()) === 0);
  });

  it('refuses a user past the uploads they may have waiting, without holding anyone else up', async () => {
    const reading = async () => (await uploadsInFlight.get()).values[0]?.value ?? 0;
    const held = [stalledUpload(alice), stalledUpload(alice)];
    await waitFor('alice to have two read', async () => (await reading()) === 2);
    // Sixty-four more wait; the sixty-fifth is refused at once.
    const queued = Array.from({ length: 64 }, () => stalledUpload(alice));
    let refused: Response | null = null;
    await waitFor('one more of alice to be refused', async () => {
      const attempt = stalledUpload(alice);
      const response = await Promise.race([attempt.response, new Promise<null>((resolve) => setTimeout(() => resolve(null), 100))]);
      if (!response) attempt.abort();
      refused = response;
      return response !== null;
    });
    expect(refused!.status).toBe(429);
    // Bob is read meanwhile (the replica has a third turn).
    const bobs = stalledUpload(bob);
    bobs.finish();
    expect((await bobs.response).status).toBe(200);
    for (const upload of [...held, ...queued]) upload.abort();
    await waitFor('every turn to be free', async () => (await reading()) === 0);
  });
});
