import { createCipheriv, createDecipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { isUuid } from '../engine/validation.js';

/**
 * Positions in the stream of job changes.
 *
 * A position is a PostgreSQL snapshot (`pg_current_snapshot()`): the set of transactions whose
 * writes it sees. Every job row records the transaction that last wrote it (`change_xid`), so the
 * changes after a position are exactly the rows whose writer the snapshot does not see — whatever
 * order the writers committed in. A sequence number cannot say that: a writer that took number 10
 * may commit after the one that took 11, and a reader that has seen 11 would skip 10 for ever.
 *
 * A client's cursor is `base` (everything it sees, the client has seen) plus, part-way through a
 * batch read at `target`, the key `(xid, id)` of the last row sent from that batch.
 */

/** A PostgreSQL snapshot, `xmin:xmax:xip,...`: xids below xmin are done, xids from xmax on had not started, xip were running. */
export interface Snapshot {
  text: string;
  xmin: bigint;
  xmax: bigint;
  xip: ReadonlySet<bigint>;
  /** When it was taken (ms since the epoch), to tell a cursor older than the change log. */
  takenAt: number;
}

/** A row's place within one batch: its writer and id, the batch's order. */
export interface RowKey {
  xid: bigint;
  id: string;
}

export interface StreamPosition {
  base: Snapshot;
  /** Set part-way through a batch: the batch's snapshot and the last row sent from it. */
  partial: { target: Snapshot; after: RowKey } | null;
}

/** Most running transactions a snapshot a client hands back may list. */
const MAX_XIP = 10_000;
const SNAPSHOT = /^(\d{1,20}):(\d{1,20}):((?:\d{1,20},)*\d{1,20})?$/;

export function parseSnapshot(text: string, takenAt: number): Snapshot | null {
  const match = SNAPSHOT.exec(text);
  if (!match) return null;
  const xmin = BigInt(match[1]!);
  const xmax = BigInt(match[2]!);
  const xip = match[3] ? match[3].split(',').map(BigInt) : [];
  if (xmin > xmax || xip.length > MAX_XIP || xip.some((xid) => xid < xmin || xid >= xmax)) return null;
  return { text, xmin, xmax, xip: new Set(xip), takenAt };
}

/** Whether the snapshot sees the writes of transaction `xid` (PostgreSQL's pg_visible_in_snapshot). */
export function isVisible(xid: bigint, snapshot: Snapshot): boolean {
  return xid < snapshot.xmin || (xid < snapshot.xmax && !snapshot.xip.has(xid));
}

/**
 * Whether `later` sees every transaction `earlier` sees (sufficient, not necessary: a false answer
 * only costs a wait). Any snapshot taken after another was taken passes.
 */
export function includes(later: Snapshot, earlier: Snapshot): boolean {
  if (earlier.xmax > later.xmax) return false;
  for (const xid of later.xip) if (isVisible(xid, earlier)) return false;
  return true;
}

/** The SQL parameters of a snapshot: `xmax` as text and `xip` as an array literal, for `?::xid8` and `?::xid8[]`. */
export function snapshotParams(snapshot: Snapshot): [string, string] {
  return [String(snapshot.xmax), `{${[...snapshot.xip].join(',')}}`];
}

const VERSION = 'p2';

/**
 * Cursors are sealed (AES-256-GCM): a position decides how much a catch-up reads, so a client may
 * hand back only one this API gave out (a forged "from the beginning" would make every resume scan
 * the whole table), and what it says is nobody's business: its transaction ids would tell a user
 * how busy the other users' jobs are. The IV is derived from the position, so every replica writes
 * the same cursor for it. The keys are derived from JWT_SECRET; every replica shares them.
 */
export class PositionCodec {
  private readonly signingKey: Buffer;
  private readonly sealingKey: Buffer;
  private readonly ivKey: Buffer;

  constructor(secret: string) {
    this.signingKey = createHmac('sha256', secret).update('jobwire stream cursor').digest();
    this.sealingKey = createHmac('sha256', this.signingKey).update('seal').digest();
    this.ivKey = createHmac('sha256', this.signingKey).update('iv').digest();
  }

  /** The opaque `cursor` string of a position. */
  encode(position: StreamPosition): string {
    // Padded, so a cursor's length says little about how many transactions were running.
    const text = positionText(position);
    const body = Buffer.from(text.padEnd(Math.ceil(text.length / PAD_TO) * PAD_TO, ' '));
    const iv = createHmac('sha256', this.ivKey).update(body).digest().subarray(0, IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealingKey, iv);
    return Buffer.concat([iv, cipher.update(body), cipher.final(), cipher.getAuthTag()]).toString('base64url');
  }

  /** A cursor back as a position, or null when this API did not write it (or it was altered). */
  decode(cursor: string): StreamPosition | null {
    if (cursor.length > MAX_CURSOR_LENGTH) return null;
    if (cursor.includes('.')) return this.decodeSigned(cursor);
    const sealed = Buffer.from(cursor, 'base64url');
    if (sealed.length <= IV_BYTES + TAG_BYTES || sealed.toString('base64url') !== cursor) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.sealingKey, sealed.subarray(0, IV_BYTES));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      const body = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
      return parsePositionText(body.toString('utf8').trimEnd());
    } catch {
      return null;
    }
  }

  /** A cursor of the earlier format, signed but readable (`body.mac`): still taken until it expires. */
  private decodeSigned(cursor: string): StreamPosition | null {
    const dot = cursor.lastIndexOf('.');
    const body = cursor.slice(0, dot);
    const given = Buffer.from(cursor.slice(dot + 1), 'base64url');
    const expected = createHmac('sha256', this.signingKey).update(body).digest().subarray(0, 16);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    return decodePosition(body);
  }
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
const PAD_TO = 64;

/**
 * Longest cursor accepted. Snapshots are written compactly (running xids as base-36 steps from
 * the previous one), so even a thousand running transactions fit in a few kilobytes, under the
 * 16 KiB a `Last-Event-ID` header may take.
 */
const MAX_CURSOR_LENGTH = 64 * 1024;

/** A snapshot as cursor text: `xmin~(xmax-xmin)~step,step,…` in base 36. */
function compactSnapshot(snapshot: Snapshot): string {
  let previous = snapshot.xmin;
  const steps = [...snapshot.xip]
    .sort((a, b) => (a < b ? -1 : 1))
    .map((xid) => {
      const step = xid - previous;
      previous = xid;
      return step.toString(36);
    });
  return `${snapshot.xmin.toString(36)}~${(snapshot.xmax - snapshot.xmin).toString(36)}~${steps.join(',')}`;
}

const COMPACT = /^([0-9a-z]{1,13})~([0-9a-z]{1,13})~((?:[0-9a-z]{1,13},)*[0-9a-z]{1,13})?$/;

/** Cursor text back as PostgreSQL's snapshot text (`xmin:xmax:xip,…`, ascending), or null. */
function expandSnapshot(text: string): string | null {
  const match = COMPACT.exec(text);
  if (!match) return null;
  const xmin = parseBase36(match[1]!);
  let xid = xmin;
  const xip = match[3] ? match[3].split(',').map((step) => (xid += parseBase36(step))) : [];
  return `${xmin}:${xmin + parseBase36(match[2]!)}:${xip.join(',')}`;
}

function parseBase36(text: string): bigint {
  let value = 0n;
  for (const digit of text) value = value * 36n + BigInt(Number.parseInt(digit, 36));
  return value;
}

/** A position as text, unsigned (see PositionCodec). */
function positionText(position: StreamPosition): string {
  const { base, partial } = position;
  const fields = [VERSION, String(base.takenAt), compactSnapshot(base)];
  if (partial) fields.push(compactSnapshot(partial.target), String(partial.after.xid), partial.after.id);
  return fields.join('|');
}

/** The body of a cursor of the signed format, back as a position, or null when it is not one. */
function decodePosition(cursor: string): StreamPosition | null {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  return parsePositionText(Buffer.from(cursor, 'base64url').toString('utf8'));
}

/** `positionText` back as a position, or null when it is not one. */
function parsePositionText(text: string): StreamPosition | null {
  const fields = text.split('|');
  const [version, takenAtText, baseText, targetText, xidText, id] = fields;
  if (version !== VERSION || !takenAtText || !/^\d{1,15}$/.test(takenAtText) || !baseText) return null;
  const takenAt = Number(takenAtText);
  const baseSnapshot = expandSnapshot(baseText);
  const base = baseSnapshot === null ? null : parseSnapshot(baseSnapshot, takenAt);
  if (!base) return null;
  if (fields.length === 3) return { base, partial: null };
  if (fields.length !== 6 || !targetText || !xidText || !/^\d{1,20}$/.test(xidText) || !id || !isUuid(id)) return null;
  const targetSnapshot = expandSnapshot(targetText);
  const target = targetSnapshot === null ? null : parseSnapshot(targetSnapshot, takenAt);
  if (!target || !includes(target, base)) return null;
  return { base, partial: { target, after: { xid: BigInt(xidText), id } } };
}

/** The position a batch has reached, once all of it was read: its snapshot. */
export function positionAt(snapshot: Snapshot): StreamPosition {
  return { base: snapshot, partial: null };
}

/** Whether a client at `position` has seen the change with this key. */
export function hasSeen(position: StreamPosition, key: RowKey): boolean {
  if (isVisible(key.xid, position.base)) return true;
  const partial = position.partial;
  if (!partial || !isVisible(key.xid, partial.target)) return false;
  return key.xid < partial.after.xid || (key.xid === partial.after.xid && key.id <= partial.after.id);
}
