// Runs against a real Dovecot on loopback: start it first with `bash .ci/imap-server.sh`.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImapHostPolicy } from '../../src/mail/imap-host-policy.js';
import {
  appendMessages,
  createImapMailbox,
  deleteImapMailbox,
  IMAP_CONNECT_FAILED,
  ImapAuthError,
  ImapConnectError,
  ImapMailboxNotFoundError,
  openImapMailbox as openWithOptions,
  type ImapFetchState,
  type ImapMessage,
  type ImapOpenOptions,
  type ImapOversizedMessage,
  type ImapSettings,
} from '../../src/mail/imap-source.js';

const host = process.env.IMAP_TEST_HOST ?? '127.0.0.1';
const port = Number(process.env.IMAP_TEST_PORT ?? 10143);
const runId = randomBytes(4).toString('hex');

// Any "test-*" user exists on the test server with password "pw" and starts with an empty
// mailbox tree, so this file owns everything it sees.
const settings: ImapSettings = { host, port, secure: false, user: `test-imap-source-${runId}`, password: 'pw' };
const fresh: ImapFetchState = { uidValidity: null, lastUid: 0 };
const mailboxes: string[] = [];
/** The test server is on loopback: allowed the way an operator would allow it. */
const hostPolicy = new ImapHostPolicy([host]);

/** openImapMailbox with the loopback-allowing policy unless a test gives another one. */
function openImapMailbox(s: ImapSettings, mailbox: string, state: ImapFetchState, opts: Partial<ImapOpenOptions> = {}) {
  return openWithOptions(s, mailbox, state, { hostPolicy, ...opts });
}

/** A mailbox name of this file's own; the server's hierarchy separator is ".". */
function mailboxName(label: string): string {
  const name = `src-${label}-${randomBytes(3).toString('hex')}`;
  mailboxes.push(name);
  return name;
}

/** A small RFC 5322 message with CRLF line ends. */
function message(n: number, { trailingCrlf = true } = {}): Buffer {
  const text =
    `From: Sender <sender@example.test>\r\n` +
    `To: receiver@example.test\r\n` +
    `Subject: Message ${n}\r\n` +
    `Message-ID: <${n}.${runId}@jobwire.test>\r\n` +
    `Date: Mon, 03 Mar 2025 10:00:${String(n % 60).padStart(2, '0')} +0000\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n` +
    `\r\n` +
    `Body of message ${n}.\r\nSecond line ünïcödé.` +
    (trailingCrlf ? '\r\n' : '');
  return Buffer.from(text, 'utf8');
}

async function collect<T extends ImapMessage | ImapOversizedMessage>(iter: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of iter) out.push(m);
  return out;
}

/** Opens, drains and closes; returns the info and the messages. */
async function fetchAll(mailbox: string, state: ImapFetchState) {
  const session = await openImapMailbox(settings, mailbox, state);
  try {
    return { info: session.info, messages: (await collect(session.messages())) as ImapMessage[] };
  } finally {
    await session.close();
  }
}

async function imapGreets(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(3_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk) => done(chunk.toString('latin1').startsWith('* OK')));
  });
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: free } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return free;
}

beforeAll(async () => {
  if (!(await imapGreets())) {
    throw new Error(
      `No IMAP server answers on ${host}:${port}. Start the test server with \`bash .ci/imap-server.sh\` ` +
        `(as root), or point IMAP_TEST_HOST / IMAP_TEST_PORT at one.`,
    );
  }
});

afterAll(async () => {
  for (const mailbox of mailboxes) {
    await deleteImapMailbox(settings, mailbox).catch(() => undefined);
  }
});

describe('openImapMailbox', () => {
  it('fetches every appended message byte for byte on a first run, in UID order', async () => {
    const mailbox = mailboxName('initial');
    const raws = [message(1), message(2, { trailingCrlf: false }), message(3), message(4), message(5)];
    await appendMessages(settings, mailbox, raws);

    const { info, messages } = await fetchAll(mailbox, fresh);

    expect(info).toMatchObject({ exists: 5, toFetch: 5, reset: true, uidNext: 6 });
    expect(info.uidValidity).toMatch(/^[1-9]\d*$/);
    expect(messages.map((m) => m.uid)).toEqual([1, 2, 3, 4, 5]);
    messages.forEach((m, i) => {
      // CRLF-only messages round-trip exactly, a missing final CRLF included.
      expect(m.raw.equals(raws[i]!), `message ${m.uid} differs`).toBe(true);
    });
  });

  it('returns what Dovecot stores: bare LF becomes CRLF and NUL becomes 0x80', async () => {
    const mailbox = mailboxName('normalise');
    const bareLf = Buffer.from('Subject: lf\n\nline one\nline two\r\nend\n', 'latin1');
    const withNul = Buffer.from('Subject: nul\r\n\r\na\x00b\r\n', 'latin1');
    const loneCr = Buffer.from('Subject: cr\r\n\r\nlone \r carriage return\r\n', 'latin1');
    await appendMessages(settings, mailbox, [bareLf, withNul, loneCr]);

    const { messages } = await fetchAll(mailbox, fresh);

    expect(messages.map((m) => m.raw.toString('latin1'))).toEqual([
      'Subject: lf\r\n\r\nline one\r\nline two\r\nend\r\n',
      'Subject: nul\r\n\r\na\x80b\r\n',
      'Subject: cr\r\n\r\nlone \r carriage return\r\n',
    ]);
  });

  it('fetches only messages newer than lastUid on a re-run', async () => {
    const mailbox = mailboxName('incremental');
    await appendMessages(settings, mailbox, [message(1), message(2), message(3)]);
    const first = await fetchAll(mailbox, fresh);
    const state: ImapFetchState = { uidValidity: first.info.uidValidity, lastUid: 3 };

    // Nothing new: `UID 4:*` still matches UID 3 on the wire, which must not come back.
    const idle = await fetchAll(mailbox, state);
    expect(idle.info).toMatchObject({ exists: 3, toFetch: 0, reset: false, uidValidity: state.uidValidity });
    expect(idle.messages).toEqual([]);

    const added = [message(4), message(5)];
    await appendMessages(settings, mailbox, added);
    const second = await fetchAll(mailbox, state);

    expect(second.info).toMatchObject({ exists: 5, toFetch: 2, reset: false, uidNext: 6 });
    expect(second.messages.map((m) => m.uid)).toEqual([4, 5]);
    expect(second.messages.map((m) => m.raw)).toEqual(added);

    // A lastUid beyond anything the server has yields nothing either.
    const ahead = await fetchAll(mailbox, { uidValidity: state.uidValidity, lastUid: 1000 });
    expect(ahead.info.toFetch).toBe(0);
    expect(ahead.messages).toEqual([]);
  });

  it('resets and refetches everything when UIDVALIDITY changes', async () => {
    const mailbox = mailboxName('uidvalidity');
    await appendMessages(settings, mailbox, [message(1), message(2), message(3)]);
    const before = await fetchAll(mailbox, fresh);

    await deleteImapMailbox(settings, mailbox);
    const raws = [message(10), message(11)];
    await appendMessages(settings, mailbox, raws);
    const after = await fetchAll(mailbox, { uidValidity: before.info.uidValidity, lastUid: 3 });

    expect(after.info.uidValidity).not.toBe(before.info.uidValidity);
    expect(after.info).toMatchObject({ reset: true, exists: 2, toFetch: 2 });
    // UIDs restarted at 1, below the old lastUid: they are fetched all the same.
    expect(after.messages.map((m) => m.uid)).toEqual([1, 2]);
    expect(after.messages.map((m) => m.raw)).toEqual(raws);
  });

  it('reports an empty mailbox as nothing to fetch', async () => {
    const mailbox = mailboxName('empty');
    await createImapMailbox(settings, mailbox);
    await createImapMailbox(settings, mailbox); // already there: no error

    const { info, messages } = await fetchAll(mailbox, fresh);

    expect(info).toMatchObject({ exists: 0, toFetch: 0, reset: true });
    expect(messages).toEqual([]);
  });

  it('throws ImapAuthError without the password for refused credentials', async () => {
    const password = 'wrong-Pa55word-xyz';
    const attempts = [
      { ...settings, password },
      { ...settings, user: 'jobwire', password },
      { ...settings, user: 'nobody-here', password },
    ];
    for (const bad of attempts) {
      const err = await openImapMailbox(bad, 'INBOX', fresh).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImapAuthError);
      const authErr = err as ImapAuthError;
      expect(authErr.name).toBe('ImapAuthError');
      expect(authErr.message).toContain(bad.user);
      expect(authErr.message).not.toContain(password);
      expect(authErr.stack ?? '').not.toContain(password);
      expect(authErr.serverResponseCode).toBe('AUTHENTICATIONFAILED');
    }
  });

  it('throws ImapMailboxNotFoundError for a mailbox that does not exist', async () => {
    const mailbox = mailboxName('missing');

    const err = await openImapMailbox(settings, mailbox, fresh).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ImapMailboxNotFoundError);
    expect((err as ImapMailboxNotFoundError).name).toBe('ImapMailboxNotFoundError');
    expect((err as ImapMailboxNotFoundError).mailbox).toBe(mailbox);
  });

  it('turns connection failures into one generic ImapConnectError, the cause only in `reason`', async () => {
    const port = await closedPort();
    const err = await openImapMailbox({ ...settings, port }, 'INBOX', fresh).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ImapConnectError);
    const connectErr = err as ImapConnectError;
    expect(connectErr.message).toBe(IMAP_CONNECT_FAILED);
    expect(connectErr.refused).toBe(false);
    expect(connectErr.reason).toContain('ECONNREFUSED');

    // TLS spoken to the plaintext server: the same message, another reason.
    const tls = (await openImapMailbox({ ...settings, secure: true }, 'INBOX', fresh).catch((e: unknown) => e)) as ImapConnectError;
    expect(tls).toBeInstanceOf(ImapConnectError);
    expect(tls.message).toBe(IMAP_CONNECT_FAILED);
    expect(tls.refused).toBe(false);
  });

  it('refuses a host outside the policy before connecting, and checks every resolved address', async () => {
    let connections = 0;
    const server = net.createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const listening = (server.address() as net.AddressInfo).port;
    try {
      const none = new ImapHostPolicy([]);
      for (const target of ['127.0.0.1', 'localhost', '2130706433', '127.1', '::ffff:127.0.0.1']) {
        const err = await openImapMailbox({ ...settings, host: target, port: listening }, 'INBOX', fresh, { hostPolicy: none }).catch(
          (e: unknown) => e,
        );
        expect(err, target).toBeInstanceOf(ImapConnectError);
        expect((err as ImapConnectError).message).toBe(IMAP_CONNECT_FAILED);
        expect((err as ImapConnectError).refused, target).toBe(true);
      }
      // A name with one public and one loopback address: refused as a whole, not by luck of order.
      const mixed = new ImapHostPolicy([], {
        lookup: async () => [
          { address: '93.184.215.14', family: 4 },
          { address: '127.0.0.1', family: 4 },
        ],
      });
      const err = await openImapMailbox({ ...settings, host: 'mixed.example.test', port: listening }, 'INBOX', fresh, {
        hostPolicy: mixed,
      }).catch((e: unknown) => e);
      expect((err as ImapConnectError).refused).toBe(true);
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it('connects to the vetted address, not to what the name resolves to later', async () => {
    const mailbox = mailboxName('pinned');
    await appendMessages(settings, mailbox, [message(1)]);
    // The name is allowed and resolves once, to the test server; a second lookup would fail.
    let lookups = 0;
    const pinned = new ImapHostPolicy(['imap.pinned.test'], {
      lookup: async () => (lookups++ === 0 ? [{ address: host, family: 4 }] : []),
    });
    const session = await openImapMailbox({ ...settings, host: 'imap.pinned.test' }, mailbox, fresh, { hostPolicy: pinned });
    try {
      expect((await collect(session.messages())).map((m) => m.uid)).toEqual([1]);
    } finally {
      await session.close();
    }
    expect(lookups).toBe(1);
  });

  it('skips messages over maxMessageBytes without fetching their bodies, in UID order', async () => {
    const mailbox = mailboxName('oversized');
    const big = Buffer.concat([message(2), Buffer.from(`${'x'.repeat(20_000)}\r\n`)]);
    await appendMessages(settings, mailbox, [message(1), big, message(3), big, big]);

    const session = await openImapMailbox(settings, mailbox, fresh, { maxMessageBytes: 10_000 });
    try {
      const seen = await collect(session.messages());
      expect(seen.map((m) => [m.uid, m.raw === null])).toEqual([
        [1, false],
        [2, true],
        [3, false],
        [4, true],
        [5, true],
      ]);
      expect((seen[1] as ImapOversizedMessage).size).toBe(big.length);
      expect(seen[2]!.raw).toEqual(message(3));
    } finally {
      await session.close();
    }
  });

  it('stops between messages when aborted, with the abort reason', async () => {
    const mailbox = mailboxName('abort');
    await appendMessages(
      settings,
      mailbox,
      Array.from({ length: 8 }, (_, i) => message(i + 1)),
    );
    const controller = new AbortController();
    const session = await openImapMailbox(settings, mailbox, fresh, { signal: controller.signal });
    expect(session.info.toFetch).toBe(8);

    const seen: number[] = [];
    const err = await (async () => {
      for await (const m of session.messages()) {
        seen.push(m.uid);
        if (seen.length === 3) controller.abort();
      }
    })().catch((e: unknown) => e);
    await session.close();

    expect(seen).toEqual([1, 2, 3]);
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe('AbortError');

    // The server is fine afterwards, and nothing was marked as read by the aborted run.
    const again = await fetchAll(mailbox, fresh);
    expect(again.messages.map((m) => m.uid)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('rejects at once with a custom abort reason, and for an already aborted signal', async () => {
    const mailbox = mailboxName('pre-abort');
    await appendMessages(settings, mailbox, [message(1)]);

    const reason = new Error('job cancelled');
    const err = await openImapMailbox(settings, mailbox, fresh, { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e);
    expect(err).toBe(reason);

    const controller = new AbortController();
    const session = await openImapMailbox(settings, mailbox, fresh, { signal: controller.signal });
    controller.abort(reason);
    await expect(collect(session.messages())).rejects.toBe(reason);
    await session.close();
  });

  it('can be left early and closed, and only iterated once', async () => {
    const mailbox = mailboxName('early');
    await appendMessages(settings, mailbox, [message(1), message(2), message(3)]);
    const session = await openImapMailbox(settings, mailbox, fresh);

    for await (const m of session.messages()) {
      expect(m.uid).toBe(1);
      break;
    }
    await expect(collect(session.messages())).rejects.toThrow(/once/);
    await session.close();
    await session.close(); // idempotent

    expect((await fetchAll(mailbox, fresh)).messages).toHaveLength(3);
  });

  // One FETCH asks for at most 200 UIDs; 205 messages need two. Seeding is one APPEND per message.
  it('fetches across several FETCH batches', { timeout: 30_000 }, async () => {
    const mailbox = mailboxName('batches');
    const raws = Array.from({ length: 205 }, (_, i) => message(i + 1));
    await appendMessages(settings, mailbox, raws);

    const { info, messages } = await fetchAll(mailbox, fresh);

    expect(info.toFetch).toBe(205);
    expect(messages.map((m) => m.uid)).toEqual(raws.map((_, i) => i + 1));
    expect(messages.every((m, i) => m.raw.equals(raws[i]!))).toBe(true);
  });
});
