import ipaddr from 'ipaddr.js';
import { defaultRepeatStrategy } from 'bullmq';
import { z } from 'zod';

const booleanFromString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const positiveInt = z.coerce.number().int().positive();

/**
 * Every setting Jobwire reads from the environment, with the default used for local work.
 * `loadConfig` reports every bad value at once, one line each, before anything connects.
 */
const configSchema = z.object({
  /** PostgreSQL connection string. (Default: postgres://postgres@127.0.0.1:5432/jobwire) */
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/jobwire'),
  /** Redis connection string. (Default: redis://127.0.0.1:6379) */
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** Prefix of every BullMQ key and pub/sub channel, so several deployments can share one Redis. (Default: jobwire) */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _.:- only')
    .default('jobwire'),
  /** HTTP port of the API. (Default: 4000) */
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  /** Port where a worker sidecar serves GET /metrics and /health; 0 disables it. (Default: 9464) */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** HS256 secret for bearer tokens; at least 32 characters. (Default: a development secret, refused in production) */
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').default('jobwire-development-secret-change-me!'),
  /** Directory for blobs: uploads, raw messages, archives. Shared by the API and the worker. (Default: ./.data/storage) */
  STORAGE_DIR: z.string().min(1).default('./.data/storage'),
  /** 32-byte key, base64 or 64 hex chars, for AES-256-GCM archive encryption and IMAP passwords at rest. Unset: encryption jobs are refused. */
  ARCHIVE_KEY: z
    .string()
    .optional()
    .refine((value) => value === undefined || decodeKey(value) !== null, 'must be 32 bytes as base64 or 64 hex characters'),
  /** Timezone of the cron schedules. (Default: UTC) */
  SCHEDULE_TZ: z
    .string()
    .default('UTC')
    .refine((tz) => isValidTimeZone(tz), 'must be an IANA timezone such as Europe/Paris'),
  /** Replaces cron patterns by schedule id, `id=pattern;id=pattern` (6-field patterns have seconds). (Default: none) */
  SCHEDULE_OVERRIDES: z
    .string()
    .default('')
    .refine(
      (value) => value.split(';').every((part) => part.trim() === '' || /^[\w-]+=\S.*$/.test(part.trim())),
      'must look like id=cron;id=cron',
    )
    .superRefine((value, ctx) => {
      // Found here, named, rather than as the worker's start failing on BullMQ's own message.
      for (const part of value.split(';')) {
        const at = part.indexOf('=');
        if (at < 0) continue;
        const pattern = part.slice(at + 1).trim();
        try {
          defaultRepeatStrategy(Date.now(), { pattern, tz: 'UTC' });
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          ctx.addIssue({ code: 'custom', message: `${part.slice(0, at).trim()}: "${pattern}" is not a cron pattern (${reason})` });
        }
      }
    }),
  /** Largest accepted upload in bytes. (Default: 100 MiB) */
  MAX_UPLOAD_BYTES: positiveInt.default(100 * 1024 * 1024),
  /** Uploads a replica takes at once, from all users together (each is held in memory while it is read). (Default: 4) */
  MAX_CONCURRENT_UPLOADS: positiveInt.default(4),
  /** Milliseconds after which BullMQ considers an active job stalled (its worker died). (Default: 30000) */
  STALLED_INTERVAL_MS: positiveInt.default(30_000),
  /** How often the reconciler compares PostgreSQL with Redis. (Default: 60000) */
  RECONCILE_INTERVAL_MS: positiveInt.default(60_000),
  /** How often each sidecar ends the jobs that waited past `options.expiresInMs` without starting. (Default: 1000) */
  EXPIRY_SWEEP_INTERVAL_MS: positiveInt.default(1_000),
  /** Multiplies every job type's backoff delay; tests set it low. (Default: 1) */
  BACKOFF_SCALE: z.coerce.number().positive().default(1),
  /** Minimum milliseconds between two progress writes of one job. (Default: 100, i.e. ~10/s) */
  PROGRESS_INTERVAL_MS: z.coerce.number().int().min(0).default(100),
  /** Whether the sidecar registers the cron schedules. (Default: true) */
  SCHEDULER_ENABLED: booleanFromString.default(true),
  /** Serve GraphiQL on GET /graphql. (Default: true) */
  GRAPHIQL: booleanFromString.default(true),
  /** Serve the dashboard at /dashboard (built into dist/dashboard by `npm run build`). (Default: true) */
  DASHBOARD: booleanFromString.default(true),
  /**
   * The dashboard's "dev token" buttons: a browser on the same machine (at localhost) gets a token
   * for `dev-user` or `dev-admin`. Set by `npm run dev` only; refused when NODE_ENV=production. (Default: false)
   */
  DEV_TOKENS: booleanFromString.default(false),
  /** pino log level. (Default: info) */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Milliseconds SIGTERM waits for running jobs before handing them back. (Default: 25000) */
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(25_000),
  /**
   * IMAP hosts the worker may reach even though they are (or resolve to) loopback, private, link-local,
   * unique-local or unspecified addresses: comma-separated host names, IP addresses or CIDR ranges,
   * e.g. `127.0.0.1,imap.internal,10.1.0.0/16`. (Default: none; only public addresses are reached)
   */
  IMAP_ALLOWED_HOSTS: z
    .string()
    .default('')
    .refine((value) => listSetting(value).every(isHostOrRange), 'must be comma-separated host names, IP addresses or CIDR ranges'),
  /** Largest single message inside an mbox upload or an IMAP mailbox, in bytes; bigger ones are counted as malformed. (Default: 50 MiB) */
  MAX_MESSAGE_BYTES: positiveInt.default(50 * 1024 * 1024),
  /** Enqueue quota per owner: at most this many jobs per ENQUEUE_RATE_WINDOW_MS, shared by every replica; admins are exempt. 0 disables it. (Default: 120) */
  ENQUEUE_RATE_MAX: z.coerce.number().int().min(0).default(120),
  /** Window of the enqueue quota, in milliseconds. (Default: 60000) */
  ENQUEUE_RATE_WINDOW_MS: positiveInt.default(60_000),
  /** Jobs one owner may have not yet finished (PENDING, DELAYED, ACTIVE); admins are exempt. 0 disables it. (Default: 1000) */
  MAX_UNFINISHED_JOBS_PER_OWNER: z.coerce.number().int().min(0).default(1_000),
  /** Open subscriptions one user may hold across every replica; admins are exempt. 0 disables it. (Default: 200) */
  MAX_SUBSCRIPTIONS_PER_USER: z.coerce.number().int().min(0).default(200),
  /** How long a stream cursor stays usable: `jobEvents(after:)` with an older one gets CURSOR_EXPIRED. (Default: 24) */
  STREAM_RETENTION_HOURS: positiveInt.default(24),
  /** Each API replica reads the job table's changes at least this often while anyone subscribes (pub/sub only rings the bell sooner). (Default: 1000) */
  STREAM_POLL_INTERVAL_MS: positiveInt.default(1000),
  /** Events one subscription may have waiting for its client before it is cut off with SUBSCRIBER_TOO_SLOW. (Default: 10000) */
  MAX_QUEUED_EVENTS_PER_SUBSCRIPTION: positiveInt.default(10_000),
  /**
   * The same bound in bytes (each event counted as its job's JSON): a few events with large inputs
   * or metadata cut a subscriber off as surely as many small ones. (Default: 4 MiB)
   */
  MAX_QUEUED_BYTES_PER_SUBSCRIPTION: positiveInt.default(4 * 1024 * 1024),
  /**
   * Bytes a subscriber's connection may have waiting to go out before its events stop being written
   * and wait in its queue instead (where MAX_QUEUED_EVENTS_PER_SUBSCRIPTION applies). (Default: 64 KiB)
   */
  SUBSCRIPTION_SEND_BUFFER_BYTES: positiveInt.default(64 * 1024),
  /** Reserved graphql-sse streams (single connection mode, PUT /graphql/stream) one user may hold on a replica, open or not. (Default: 20) */
  SSE_RESERVATIONS_PER_USER: positiveInt.default(20),
  /** A reserved graphql-sse stream not opened within this many ms is dropped, with any operation sent into it. (Default: 30000) */
  SSE_UNOPENED_STREAM_MS: positiveInt.default(30_000),
  /** Log lines kept per job (`Job.logs`); past it the oldest are dropped and counted in `droppedCount`. (Default: 1000) */
  JOB_LOG_MAX_LINES: positiveInt.default(1_000),
  /** Open subscriptions on one WebSocket connection (or one SSE request). (Default: 100) */
  MAX_SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).default(100),
  /** Enabled rules with a schedule one owner may have; their runs are the system's, so this bounds them. 0 disables it. (Default: 20) */
  MAX_SCHEDULED_RULES_PER_OWNER: z.coerce.number().int().min(0).default(20),
  /** Retention policies one owner may have; the daily retention job applies all of them. 0 disables it. (Default: 50) */
  MAX_RETENTION_POLICIES_PER_OWNER: z.coerce.number().int().min(0).default(50),
  /** Shortest interval between two runs of a rule's cron schedule, in seconds. (Default: 300) */
  RULE_SCHEDULE_MIN_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(300),
  /**
   * Most messages one `previewRule` examines, newest first; a preview that stops there says so
   * (`partial`). (Default: 10000)
   */
  RULE_PREVIEW_MAX_MESSAGES: positiveInt.default(10_000),
  /**
   * Condition tests the `previewRule` fields of one request may run together (one per condition,
   * one per recipient for TO); past it a preview stops and says so (`partial`). (Default: 1000000)
   */
  RULE_PREVIEW_MAX_TESTS: positiveInt.default(1_000_000),
  /** Largest WebSocket message accepted, in bytes. (Default: 1 MiB) */
  WS_MAX_PAYLOAD_BYTES: positiveInt.default(1024 * 1024),
  /** A WebSocket that has not sent a valid `connection_init` within this many milliseconds is closed. (Default: 3000) */
  WS_CONNECTION_INIT_TIMEOUT_MS: positiveInt.default(3_000),
  /**
   * A WebSocket is pinged this often; one that in as long again neither answers nor takes any of
   * the data sent to it is dropped. (Default: 12000)
   */
  WS_KEEP_ALIVE_MS: positiveInt.default(12_000),
  /**
   * Origins allowed to call the API from a browser (CORS), comma-separated, e.g. `https://app.example.com`.
   * (Default: none; same origin only)
   */
  CORS_ORIGINS: z.string().default(''),
  /** Bearer token that `GET /metrics` on the public port requires; unset: /metrics is not served there. (Default: unset) */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Separate port serving `GET /metrics` without a token, on METRICS_HOST; 0 disables it. (Default: 0) */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** Interface of METRICS_PORT and of the worker's WORKER_METRICS_PORT. (Default: 127.0.0.1) */
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment; throws a ConfigError listing every bad value. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable means "unset", as in most .env tooling.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const config = parsed.data;
  if (config.NODE_ENV === 'production' && config.JWT_SECRET === configSchema.shape.JWT_SECRET.parse(undefined)) {
    throw new ConfigError(['JWT_SECRET: the development default is refused when NODE_ENV=production']);
  }
  if (config.NODE_ENV === 'production' && config.DEV_TOKENS) {
    throw new ConfigError(['DEV_TOKENS: the dev-token buttons hand out admin tokens; refused when NODE_ENV=production']);
  }
  return config;
}

/**
 * The secrets docker-compose.yml falls back to, so that `docker compose up` runs with nothing set.
 * Published with the code: a deployment that keeps them lets anyone mint an admin token or open
 * the sealed archives. (Keep in step with docker-compose.yml.)
 */
const PUBLISHED_SECRETS: Partial<Record<'JWT_SECRET' | 'ARCHIVE_KEY', string>> = {
  JWT_SECRET: 'compose-development-secret-change-me-0000',
  ARCHIVE_KEY: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
};

/** Warnings for production settings whose secrets are the published defaults (never the values themselves). */
export function publishedSecretWarnings(config: Config): string[] {
  if (config.NODE_ENV !== 'production') return [];
  return (Object.keys(PUBLISHED_SECRETS) as (keyof typeof PUBLISHED_SECRETS)[])
    .filter((name) => config[name] === PUBLISHED_SECRETS[name])
    .map((name) => `${name} is the published docker-compose.yml default: anyone who has read it can use it; set your own ${name}`);
}

/** A comma-separated setting as a list of its non-empty, trimmed entries. */
export function listSetting(value: string): string[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
}

/** SCHEDULE_OVERRIDES as a map from schedule id to cron pattern. */
export function scheduleOverrides(config: Config): Map<string, string> {
  return new Map(
    config.SCHEDULE_OVERRIDES.split(';')
      .map((part) => part.trim())
      .filter(Boolean)
      .map((part) => {
        const at = part.indexOf('=');
        return [part.slice(0, at).trim(), part.slice(at + 1).trim()] as [string, string];
      }),
  );
}

/** The archive key as 32 raw bytes, or null when it is not a valid key. */
export function decodeKey(value: string): Buffer | null {
  const bytes = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  return bytes.length === 32 ? bytes : null;
}

function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** A host name, an IP address or a CIDR range, as IMAP_ALLOWED_HOSTS takes them. */
function isHostOrRange(entry: string): boolean {
  if (entry.includes('/')) {
    try {
      ipaddr.parseCIDR(entry);
      return true;
    } catch {
      return false;
    }
  }
  return (
    ipaddr.isValid(entry.replace(/^\[|\]$/g, '')) ||
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(entry)
  );
}
