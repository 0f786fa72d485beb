import { type DestinationStream, pino, type Logger } from 'pino';

export type { Logger };

/** Field names whose values are secrets: redacted from logs, and from the fields of job log lines. */
export const SECRET_FIELD_NAMES = ['password', 'imapPassword', 'authorization', 'token', 'archiveKey', 'ARCHIVE_KEY', 'JWT_SECRET'];

/**
 * Structured JSON logs. Secret-bearing fields are redacted wherever they appear (as a field, a
 * field's field, or one level deeper; in a line or a child logger's bindings), so a careless
 * `logger.info({ settings })` cannot leak an IMAP password or a token.
 *
 * Written to stdout in blocks: lines gather up to 4 KiB, or for at most FLUSH_INTERVAL_MS, and go
 * out in one write (a busy worker logs two lines per job, and one write per line cost more than
 * the job itself); pino writes what is left when the process exits. A SIGKILL loses at most the
 * last FLUSH_INTERVAL_MS of lines.
 */
export function createLogger(
  level: string,
  base: Record<string, unknown> = {},
  destination: DestinationStream = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: FLUSH_INTERVAL_MS }),
): Logger {
  const logger = pino(
    {
      level,
      base: { pid: process.pid, ...base },
      // Not pino's `redact`: its wildcard paths run every value of every line through the redactor
      // (about 30 µs of a no-op job's two lines); this looks at key names, and copies only what it censors.
      formatters: { log: withoutSecrets, bindings: withoutSecrets },
      serializers: { err: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
  // pino applies the bindings formatter to `base` only; a child's bindings are censored here. Every
  // child inherits these methods from the root logger, so grandchildren are covered too.
  const { child, setBindings } = logger;
  logger.child = function censoredChild(this: Logger, bindings, options) {
    return child.call(this, withoutSecrets(bindings), options);
  } as Logger['child'];
  logger.setBindings = function censoredBindings(this: Logger, bindings) {
    setBindings.call(this, withoutSecrets(bindings));
  };
  return logger;
}

const SECRET_NAMES = new Set(SECRET_FIELD_NAMES);
/** How deep secrets are looked for: a field (1), a field's field (2), and one level deeper (3). */
const SECRET_DEPTH = 3;
const CENSOR = '[redacted]';

/** `fields` with every secret-named field up to SECRET_DEPTH censored; `fields` itself when it has none. */
export function withoutSecrets<T extends Record<string, unknown>>(fields: T): T {
  return censored(fields, 1) as T;
}

function censored(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value;
  let replacements: [string, unknown][] | undefined;
  for (const key of Object.keys(value)) {
    const field = (value as Record<string, unknown>)[key];
    const replacement = SECRET_NAMES.has(key) ? CENSOR : depth < SECRET_DEPTH ? censored(field, depth + 1) : field;
    if (replacement === field) continue;
    replacements ??= [];
    replacements.push([key, replacement]);
  }
  if (!replacements) return value;
  if (Array.isArray(value)) {
    const copy: unknown[] = [...value];
    for (const [key, replacement] of replacements) copy[Number(key)] = replacement;
    return copy;
  }
  // A copy with the same prototype and own properties (an Error keeps its message and stack),
  // made in one step: a frozen or non-configurable original must not make logging throw.
  const descriptors = Object.getOwnPropertyDescriptors(value) as Record<string, PropertyDescriptor>;
  for (const [key, replacement] of replacements)
    descriptors[key] = { value: replacement, enumerable: true, writable: true, configurable: true };
  return Object.create(Object.getPrototypeOf(value), descriptors);
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
