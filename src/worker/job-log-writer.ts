import type { LogLevel } from '../db/entities/job.entity.js';
import type { JobLog, LogFields } from '../engine/define-job.js';
import type { NewJobLogEntry } from '../engine/job-log.js';
import type { Logger } from '../observability/logger.js';
import { SECRET_FIELD_NAMES } from '../observability/logger.js';
import { serialisedBytes, storableJson, storableText } from '../engine/json-values.js';
import { ThrottledFlush } from './throttled-flush.js';

/** Longest message kept; longer ones are cut. */
export const MAX_LOG_MESSAGE_LENGTH = 2_000;
/** Largest `fields` kept, serialised; larger ones are replaced by a note saying so. */
export const MAX_LOG_FIELDS_BYTES = 4 * 1024;

const PINO_LEVEL = { INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
const SECRET_NAMES = new Set(SECRET_FIELD_NAMES.map((name) => name.toLowerCase()));

/**
 * A job's `ctx.log`: each line goes to the structured logger at once and to the job's stored log
 * in batches (one statement per flush, at most one flush per `intervalMs`, and a last one on
 * `close()`). Lines waiting for a flush are bounded like the stored log: past `maxLines`, the
 * oldest are dropped and counted with the stored log's drops.
 */
export class JobLogWriter {
  private pending: NewJobLogEntry[] = [];
  private droppedBeforeWrite = 0;
  private closed = false;
  private readonly flushes: ThrottledFlush;
  readonly log: JobLog;

  constructor(
    private readonly attempt: { run: number; attempt: number },
    write: (lines: NewJobLogEntry[], alreadyDropped: number) => Promise<void>,
    private readonly logger: Logger,
    private readonly maxLines: number,
    intervalMs: number,
    onError: (error: unknown) => void,
  ) {
    this.flushes = new ThrottledFlush(
      () => {
        const lines = this.pending;
        const dropped = this.droppedBeforeWrite;
        this.pending = [];
        this.droppedBeforeWrite = 0;
        return write(lines, dropped);
      },
      intervalMs,
      onError,
    );
    this.log = {
      info: (message, fields) => this.add('INFO', message, fields),
      warn: (message, fields) => this.add('WARN', message, fields),
      error: (message, fields) => this.add('ERROR', message, fields),
    };
  }

  /** Writes what is pending and stops; lines logged after it go to the structured logger only. */
  close(): Promise<void> {
    this.closed = true;
    return this.flushes.close();
  }

  private add(level: LogLevel, message: string, fields?: LogFields): void {
    const text = String(message);
    const kept = storableText(text.length > MAX_LOG_MESSAGE_LENGTH ? `${text.slice(0, MAX_LOG_MESSAGE_LENGTH - 1)}…` : text);
    const safeFields = boundedFields(fields);
    this.logger[PINO_LEVEL[level]]({ ...safeFields, attempt: this.attempt.attempt }, kept);
    if (this.closed) return;
    this.pending.push({ ...this.attempt, at: new Date(), level, message: kept, fields: safeFields });
    // Trimmed in steps, not per line: the write keeps only the newest maxLines anyway.
    if (this.pending.length >= this.maxLines * 2) {
      const excess = this.pending.length - this.maxLines;
      this.droppedBeforeWrite += excess;
      this.pending.splice(0, excess);
    }
    this.flushes.touch();
  }
}

/** `fields` as stored: plain JSON, secrets redacted, and within MAX_LOG_FIELDS_BYTES. */
function boundedFields(fields: LogFields | undefined): Record<string, unknown> | null {
  if (fields === undefined || fields === null) return null;
  const stored = storableJson(fields, SECRET_NAMES);
  if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return { omitted: 'fields were not a JSON object' };
  const bytes = serialisedBytes(stored);
  if (bytes > MAX_LOG_FIELDS_BYTES) return { omitted: `fields were ${bytes} bytes serialised; at most ${MAX_LOG_FIELDS_BYTES} are kept` };
  return stored as Record<string, unknown>;
}
