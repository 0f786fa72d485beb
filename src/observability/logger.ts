import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Secret-bearing fields are redacted wherever they appear, so a careless
 * `logger.info({ settings })` cannot leak an IMAP password or a token.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: [
        'password',
        '*.password',
        '*.*.password',
        'imapPassword',
        '*.imapPassword',
        'authorization',
        '*.authorization',
        'headers.authorization',
        'token',
        '*.token',
        'archiveKey',
        '*.archiveKey',
        'ARCHIVE_KEY',
        'JWT_SECRET',
      ],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
