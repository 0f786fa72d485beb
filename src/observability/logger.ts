import { pino, type Logger } from 'pino';

export type { Logger };

/** Field names whose values are secrets: redacted from logs, and from the fields of job log lines. */
export const SECRET_FIELD_NAMES = ['password', 'imapPassword', 'authorization', 'token', 'archiveKey', 'ARCHIVE_KEY', 'JWT_SECRET'];

/**
 * Structured JSON logs. Secret-bearing fields are redacted wherever they appear, so a careless
 * `logger.info({ settings })` cannot leak an IMAP password or a token.
 *
 * Written to stdout in blocks: lines gather up to 4 KiB, or for at most FLUSH_INTERVAL_MS, and go
 * out in one write (a busy worker logs two lines per job, and one write per line cost more than
 * the job itself); pino writes what is left when the process exits. A SIGKILL loses at most the
 * last FLUSH_INTERVAL_MS of lines.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: FLUSH_INTERVAL_MS });
  return pino(
    {
      level,
      base: { pid: process.pid, ...base },
      redact: {
        paths: SECRET_FIELD_NAMES.flatMap((name) => [name, `*.${name}`, `*.*.${name}`]),
        censor: '[redacted]',
      },
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** The longest a log line waits for others to share its write. */
const FLUSH_INTERVAL_MS = 100;

/** SQLSTATE-coded errors from the database driver; their messages start with the SQL, values inlined. */
const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * pino's error serializer, except that a database error keeps only the server's own message: the
 * statement MikroORM puts in front of it carries user values (names, addresses, search strings).
 */
export function serializeError(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown> | undefined;
  if (!serialized || typeof serialized.code !== 'string' || !SQLSTATE.test(serialized.code)) return serialized;
  const message = String(serialized.message ?? '');
  const cut = message.lastIndexOf(' - ');
  const safe = cut >= 0 ? message.slice(cut + 3) : message;
  const stack = typeof serialized.stack === 'string' ? serialized.stack.split('\n').filter((line) => /^\s+at /.test(line)) : [];
  const { sql: _sql, sqlMessage: _sqlMessage, parameters: _parameters, query: _query, ...rest } = serialized;
  return { ...rest, message: safe, stack: [`${String(serialized.type ?? 'Error')}: ${safe}`, ...stack].join('\n') };
}
