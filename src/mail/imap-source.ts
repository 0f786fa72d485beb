import { ImapFlow } from 'imapflow';
import { ImapHostRefusedError, isAddressLiteral, type ImapHostPolicy } from './imap-host-policy.js';

/** Where and as whom to connect. */
export interface ImapSettings {
  host: string;
  port: number;
  /** Implicit TLS (port 993 style). When false, STARTTLS is used if the server offers it. */
  secure: boolean;
  user: string;
  password: string;
}

/** What an earlier import of the mailbox got to; `{ uidValidity: null, lastUid: 0 }` for a first run. */
export interface ImapFetchState {
  /** UIDVALIDITY seen by the last run, as a decimal string (it is a 32-bit unsigned number). */
  uidValidity: string | null;
  /** Highest UID already imported under that UIDVALIDITY. */
  lastUid: number;
}

/** The selected mailbox, as found when it was opened. */
export interface ImapMailboxInfo {
  /** Server's current UIDVALIDITY, as a decimal string: store it as the next run's `uidValidity`. */
  uidValidity: string;
  uidNext: number;
  /** Messages in the mailbox. */
  exists: number;
  /** Messages `messages()` will yield: UID > lastUid, or all of them when `reset`. */
  toFetch: number;
  /** The UIDVALIDITY differs from the state's (or the state had none): UIDs restarted, fetch all. */
  reset: boolean;
}

/** One message, as the server stores it. */
export interface ImapMessage {
  uid: number;
  /** The raw RFC 822 bytes (`BODY.PEEK[]`), so fetching does not set \Seen. */
  raw: Buffer;
}

/** A message larger than `maxMessageBytes`: skipped without downloading its body. */
export interface ImapOversizedMessage {
  uid: number;
  /** Always null: the body was not fetched. */
  raw: null;
  /** Its size in bytes, as the server reported it (RFC822.SIZE) or as it arrived. */
  size: number;
}

/** An opened mailbox; call `close()` in a `finally`, whether or not `messages()` was drained. */
export interface ImapMailboxSession {
  info: ImapMailboxInfo;
  /**
   * Yields the messages counted in `info.toFetch`, in ascending UID order, one at a time.
   * Call it at most once. Stops with the abort reason when the signal fires.
   */
  messages(): AsyncGenerator<ImapMessage | ImapOversizedMessage>;
  /** Logs out (or drops the socket when a fetch was left unfinished). Never throws. */
  close(): Promise<void>;
}

/** Options of {@link openImapMailbox}. */
export interface ImapOpenOptions {
  /** Which addresses may be reached; the host is resolved and checked before any connection. */
  hostPolicy: ImapHostPolicy;
  /** Messages bigger than this are yielded as {@link ImapOversizedMessage}, their body not fetched. (Default: no limit) */
  maxMessageBytes?: number;
  /** Aborts connecting and stops the fetch between messages; the connection is then closed. */
  signal?: AbortSignal;
  /** Receives connection-level errors that have no caller to go to. (Default: none) */
  logger?: { warn(o: object, msg: string): void };
}

/** The server refused the credentials. Retrying will not help: callers treat it as unrecoverable. */
export class ImapAuthError extends Error {
  /** IMAP response code, usually `AUTHENTICATIONFAILED`, when the server sent one. */
  readonly serverResponseCode: string | undefined;

  constructor(message: string, serverResponseCode?: string) {
    super(message);
    this.name = 'ImapAuthError';
    this.serverResponseCode = serverResponseCode;
  }
}

/** The one message every failure to reach an IMAP server carries, whatever the cause. */
export const IMAP_CONNECT_FAILED = 'could not connect to the IMAP server';

/**
 * The server could not be reached: the host was refused by the policy, did not resolve, refused
 * the connection, timed out, failed TLS or did not greet as IMAP. The message is always
 * {@link IMAP_CONNECT_FAILED}, so what a user sees cannot tell an open port from a closed one;
 * `reason` holds the details, for the worker log only.
 */
export class ImapConnectError extends Error {
  constructor(
    /** What actually went wrong; may name internal addresses, so it is only logged. */
    readonly reason: string,
    /** The address was refused by the host policy: retrying cannot help. */
    readonly refused: boolean,
  ) {
    super(IMAP_CONNECT_FAILED);
    this.name = 'ImapConnectError';
  }
}

/** The mailbox to import does not exist on the server. */
export class ImapMailboxNotFoundError extends Error {
  readonly mailbox: string;

  constructor(mailbox: string) {
    super(`IMAP mailbox "${mailbox}" does not exist`);
    this.name = 'ImapMailboxNotFoundError';
    this.mailbox = mailbox;
  }
}

/** Addresses of one host tried in turn before giving up (each may take CONNECTION_TIMEOUT_MS). */
const MAX_ADDRESSES = 3;
/** Connecting covers the TCP/TLS handshake. */
const CONNECTION_TIMEOUT_MS = 30_000;
const GREETING_TIMEOUT_MS = 15_000;
/** Inactivity limit; generous because the consumer may take a while over one message. */
const SOCKET_TIMEOUT_MS = 5 * 60_000;
/** UIDs per FETCH command: bounds one command's size and what an abort leaves to drain. */
const FETCH_BATCH = 200;
/** How long a polite LOGOUT may take before the socket is simply dropped. */
const LOGOUT_TIMEOUT_MS = 5_000;

/**
 * Connects, selects `mailbox` read-only and works out which messages an incremental import
 * still needs, given what the previous run stored in `state`.
 *
 * The host is resolved once and every address checked against `opts.hostPolicy`; the connection
 * then goes to a vetted address (TLS still verifies the certificate for the host name), so a DNS
 * answer that changes between check and connect cannot redirect it.
 *
 * @throws ImapConnectError when the server cannot be reached (`refused` when the policy said no)
 * @throws ImapAuthError when the credentials are refused
 * @throws ImapMailboxNotFoundError when the mailbox does not exist
 * @throws the signal's reason when aborted; any other error (a dropped connection) is transient
 *   and worth a retry
 */
export async function openImapMailbox(
  settings: ImapSettings,
  mailbox: string,
  state: ImapFetchState,
  opts: ImapOpenOptions,
): Promise<ImapMailboxSession> {
  const { signal, logger, hostPolicy, maxMessageBytes = Number.POSITIVE_INFINITY } = opts;
  signal?.throwIfAborted();

  // Set once an address is being tried; the abort handler closes whichever client is current.
  let current: ImapFlow | null = null;
  // Aborting while a command waits on the network must not wait for the server to answer.
  const onAbort = (): void => current?.close();
  signal?.addEventListener('abort', onAbort, { once: true });
  const detach = (): void => signal?.removeEventListener('abort', onAbort);

  let client: ImapFlow;
  let info: ImapMailboxInfo;
  let uids: number[];
  try {
    client = await connectVetted(settings, hostPolicy, logger, signal, (c) => {
      current = c;
    });
    const box = await selectReadOnly(client, mailbox);
    const uidValidity = box.uidValidity.toString();
    const reset = state.uidValidity !== uidValidity;
    const from = reset ? 1 : Math.max(state.lastUid, 0) + 1;
    uids = box.exists === 0 ? [] : await searchUidsFrom(client, from);
    info = { uidValidity, uidNext: box.uidNext, exists: box.exists, toFetch: uids.length, reset };
  } catch (err) {
    detach();
    // The cast: TypeScript cannot see that the callback above may have set `current`.
    (current as ImapFlow | null)?.close();
    throw signal?.aborted ? abortError(signal) : err;
  }

  let fetching = false;
  let started = false;
  let closed = false;

  async function* messages(): AsyncGenerator<ImapMessage | ImapOversizedMessage> {
    if (started) throw new Error('messages() can only be iterated once per opened mailbox');
    started = true;
    if (closed) throw new Error('IMAP mailbox session is closed');
    let last = 0;
    try {
      for (let i = 0; i < uids.length; i += FETCH_BATCH) {
        const batch = uids.slice(i, i + FETCH_BATCH);
        signal?.throwIfAborted();
        // Sizes first, so an oversized body is never downloaded (imapflow buffers a whole literal).
        const sizes = new Map<number, number>();
        fetching = true;
        for await (const msg of client.fetch(toSequenceSet(batch), { uid: true, size: true }, { uid: true })) {
          if (typeof msg.size === 'number') sizes.set(msg.uid, msg.size);
        }
        fetching = false;
        // UIDs without a size were expunged since the search: they are not coming.
        const oversized = batch.filter((uid) => (sizes.get(uid) ?? 0) > maxMessageBytes);
        const wanted = new Set(batch.filter((uid) => sizes.has(uid) && sizes.get(uid)! <= maxMessageBytes));
        // Skipped UIDs are yielded in their place, so the consumer still sees ascending UIDs.
        const skippedBefore = function* (uid: number): Generator<ImapOversizedMessage> {
          while (oversized.length > 0 && oversized[0]! < uid) {
            const skipped = oversized.shift()!;
            last = skipped;
            yield { uid: skipped, raw: null, size: sizes.get(skipped)! };
          }
        };
        if (wanted.size > 0) {
          signal?.throwIfAborted();
          fetching = true;
          for await (const msg of client.fetch(toSequenceSet([...wanted]), { uid: true, source: true }, { uid: true })) {
            // A FETCH stream can also carry unsolicited flag updates; only our bodies count.
            if (!wanted.has(msg.uid) || !msg.source || msg.uid <= last) continue;
            yield* skippedBefore(msg.uid);
            last = msg.uid;
            // The server's size was a lie: the body is here already, but it still does not go further.
            if (msg.source.length > maxMessageBytes) yield { uid: msg.uid, raw: null, size: msg.source.length };
            else yield { uid: msg.uid, raw: msg.source };
            // No other IMAP command may run while the fetch iterates, so the check stays local.
            signal?.throwIfAborted();
          }
          fetching = false;
        }
        yield* skippedBefore(Number.POSITIVE_INFINITY);
      }
    } catch (err) {
      // The socket may be mid-response: drop it rather than let anything else use it.
      client.close();
      throw signal?.aborted ? abortError(signal) : err;
    } finally {
      if (fetching) {
        // Left early (consumer break or error): the rest of the FETCH would otherwise be drained.
        client.close();
      }
    }
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    detach();
    if (fetching || !client.usable) {
      client.close();
      return;
    }
    await logoutOrDrop(client);
  }

  return { info, messages, close };
}

/**
 * Uploads messages to `mailbox` with IMAP APPEND, creating the mailbox first if needed.
 * Meant for seeding test servers; messages are stored in the given order, without flags.
 * Like the other seeding helpers it connects where `settings` say, without a host policy: never
 * call it with a host a user chose.
 */
export async function appendMessages(settings: ImapSettings, mailbox: string, raws: Buffer[]): Promise<void> {
  await withClient(settings, async (client) => {
    await client.mailboxCreate(mailbox);
    for (const raw of raws) {
      await client.append(mailbox, raw);
    }
  });
}

/** Creates `mailbox`; does nothing when it already exists. */
export async function createImapMailbox(settings: ImapSettings, mailbox: string): Promise<void> {
  await withClient(settings, async (client) => {
    await client.mailboxCreate(mailbox);
  });
}

/**
 * Deletes `mailbox` with its messages; does nothing when it does not exist. Recreating it
 * afterwards gives it a new UIDVALIDITY.
 */
export async function deleteImapMailbox(settings: ImapSettings, mailbox: string): Promise<void> {
  await withClient(settings, async (client) => {
    try {
      await client.mailboxDelete(mailbox);
    } catch (err) {
      if (!isMissingMailbox(err)) throw err;
    }
  });
}

/**
 * Resolves and vets the host, then connects to its addresses in turn. Every failure short of an
 * answered LOGIN becomes one {@link ImapConnectError}: a port scan through this function learns
 * nothing from the message. A refused LOGIN keeps its own error, because only a server that
 * greeted as IMAP at an address the policy allows can produce it, and knowing that a mail server
 * the user chose speaks IMAP reveals nothing about the operator's network.
 */
async function connectVetted(
  settings: ImapSettings,
  policy: ImapHostPolicy,
  logger: ImapOpenOptions['logger'],
  signal: AbortSignal | undefined,
  onClient: (client: ImapFlow) => void,
): Promise<ImapFlow> {
  let addresses: string[];
  try {
    addresses = await policy.resolve(settings.host);
  } catch (err) {
    if (err instanceof ImapHostRefusedError) throw new ImapConnectError(`host refused: ${err.reason}`, true);
    throw new ImapConnectError(`resolving the host failed: ${describe(err)}`, false);
  }
  const failures: string[] = [];
  for (const address of addresses.slice(0, MAX_ADDRESSES)) {
    signal?.throwIfAborted();
    const client = createClient(settings, logger, address);
    onClient(client);
    try {
      await connect(client, settings);
      return client;
    } catch (err) {
      client.close();
      if (err instanceof ImapAuthError || signal?.aborted) throw err;
      failures.push(`${address}: ${redact(describe(err), settings.password)}`);
    }
  }
  throw new ImapConnectError(failures.join('; '), false);
}

/** `address`: the vetted IP to connect to instead of resolving `settings.host` again. */
function createClient(settings: ImapSettings, logger: ImapOpenOptions['logger'], address = settings.host): ImapFlow {
  const client = new ImapFlow({
    host: address,
    // The certificate is still checked against (and SNI still names) the host the user gave.
    ...(isAddressLiteral(settings.host) ? {} : { servername: settings.host }),
    port: settings.port,
    secure: settings.secure,
    auth: { user: settings.user, pass: settings.password },
    // imapflow's own logging includes protocol traffic around the login: never turn it on here.
    logger: false,
    // Each connection runs one job's commands back to back; IDLE in the gaps only costs round trips.
    disableAutoIdle: true,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
  });
  // An 'error' event without a listener would crash the process; the pending command rejects too.
  client.on('error', (err: unknown) => {
    logger?.warn({ err: errorSummary(err), host: settings.host, address, port: settings.port }, 'IMAP connection error');
  });
  return client;
}

async function connect(client: ImapFlow, settings: ImapSettings): Promise<void> {
  try {
    await client.connect();
  } catch (err) {
    if (isAuthFailure(err)) {
      const e = err as { serverResponseCode?: string; response?: unknown };
      // imapflow hands over the whole tagged line ("3 NO [AUTHENTICATIONFAILED] ..."): keep the text.
      const line = typeof e.response === 'string' ? e.response.replace(/^\S+\s+(NO|BAD)\s+/i, '') : '';
      const serverText = redact(line.trim(), settings.password);
      throw new ImapAuthError(
        `IMAP login as "${settings.user}" on ${settings.host}:${settings.port} was refused${serverText ? `: ${serverText}` : ''}`,
        e.serverResponseCode,
      );
    }
    throw err;
  }
}

async function selectReadOnly(client: ImapFlow, mailbox: string) {
  try {
    return await client.mailboxOpen(mailbox, { readOnly: true });
  } catch (err) {
    if (isMissingMailbox(err)) throw new ImapMailboxNotFoundError(mailbox);
    throw err;
  }
}

/** UIDs >= from, ascending. */
async function searchUidsFrom(client: ImapFlow, from: number): Promise<number[]> {
  const found = await client.search({ uid: `${from}:*` }, { uid: true });
  // `UID n:*` always matches the highest UID, even when it is below n: drop it then.
  return (found || []).filter((uid) => uid >= from).sort((a, b) => a - b);
}

/** Ascending UIDs as a compact sequence set: 1,2,3,7 → "1:3,7". */
function toSequenceSet(uids: number[]): string {
  const parts: string[] = [];
  let start = uids[0];
  let prev = start;
  for (const uid of uids.slice(1).concat(Number.NaN)) {
    if (start === undefined || prev === undefined) break;
    if (uid === prev + 1) {
      prev = uid;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = prev = uid;
  }
  return parts.join(',');
}

async function withClient<T>(settings: ImapSettings, fn: (client: ImapFlow) => Promise<T>): Promise<T> {
  const client = createClient(settings, undefined);
  try {
    await connect(client, settings);
    const result = await fn(client);
    await logoutOrDrop(client);
    return result;
  } catch (err) {
    client.close();
    throw err;
  }
}

async function logoutOrDrop(client: ImapFlow): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.logout(),
      new Promise((resolve) => {
        timer = setTimeout(resolve, LOGOUT_TIMEOUT_MS);
      }),
    ]);
  } catch {
    // The server hung up first: nothing left to say to it.
  } finally {
    clearTimeout(timer);
    client.close();
  }
}

function isAuthFailure(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { authenticationFailed?: boolean; serverResponseCode?: string };
  return e.authenticationFailed === true || e.serverResponseCode === 'AUTHENTICATIONFAILED';
}

function isMissingMailbox(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { mailboxMissing?: boolean; serverResponseCode?: string; response?: unknown };
  return (
    e.mailboxMissing === true ||
    e.serverResponseCode === 'NONEXISTENT' ||
    (typeof e.response === 'string' && /\[NONEXISTENT\]/i.test(e.response))
  );
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The IMAP fetch was aborted', 'AbortError');
}

/** Server text can in principle echo input back; never let the password through. */
function redact(text: string, password: string): string {
  return password ? text.split(password).join('***') : text;
}

/** One line for the log: the error's message and its code, when it has one. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

function errorSummary(err: unknown): object {
  if (err instanceof Error) {
    return { name: err.name, message: err.message, code: (err as { code?: unknown }).code };
  }
  return { message: String(err) };
}
