import type { EntityManager, Knex } from '@mikro-orm/postgresql';
import type pg from 'pg';

/**
 * A PostgreSQL array literal for a `?::text[]` / `?::uuid[]` placeholder. The query builder would
 * otherwise expand a JS array into a comma-separated list of values.
 */
export function pgArray(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

/**
 * Whether PostgreSQL refused a statement for a value in it (SQLSTATE classes 22, data exception;
 * 23, integrity constraint; 54, a limit exceeded), rather than for being unreachable or failing.
 */
export function isValueError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/** True for errors raised by the database driver; their messages hold SQL and data, so they are never stored or returned. */
export function isDatabaseError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const candidate = error as Error & { code?: unknown; sqlState?: unknown };
  return (
    error.name === 'DatabaseError' ||
    error.constructor.name.endsWith('Exception') ||
    (typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code))
  );
}

/**
 * Runs a statement with bound parameters (`?` placeholders, see `positional`) and answers its rows.
 * `Connection.execute` would inline every value into the SQL text (escaped, then encoded again by
 * the driver), and goes through the query builder and the ORM's query log on the way: for a batch
 * of job rows that costs more CPU than the database spends on it, and for a message with a 24 MB
 * body it is several copies of it. Here the statement goes as it is to a connection of the ORM's
 * pool, its values bound; in the EntityManager's transaction when it has one, after the
 * statements already sent on it (one connection runs one statement at a time: pg 8 queues
 * the others with a deprecation warning, pg 9 will refuse them).
 */
export async function runBound<T = Record<string, unknown>>(em: EntityManager, sql: string, params: readonly unknown[]): Promise<T[]> {
  const transaction = em.getTransactionContext<Knex.Transaction>();
  if (!transaction) return query<T>(em.getConnection().getKnex() as unknown as { client: PooledClient }, sql, params);
  // As knex itself refuses: a transaction that ended has handed its connection back to the pool.
  // Checked in the same step as the send, since the COMMIT or ROLLBACK may go out while waiting.
  const stillOpen = () => {
    if (transaction.isCompleted()) throw new Error('Transaction query already complete: the statement came after its transaction ended');
  };
  const run = () => query<T>(transaction as unknown as { client: PooledClient }, sql, params, stillOpen);
  const turn = (transactionTurns.get(transaction) ?? Promise.resolve()).then(run, run);
  transactionTurns.set(
    transaction,
    turn.catch(() => {}),
  );
  return turn;
}

/** The last statement sent on each transaction: the next waits for it. */
const transactionTurns = new WeakMap<object, Promise<unknown>>();

/**
 * Runs the statement on a connection of `client` (a transaction's client hands out the
 * transaction's own connection, and its release does nothing); `beforeSend` may refuse it.
 */
async function query<T>(
  { client }: { client: PooledClient },
  sql: string,
  params: readonly unknown[],
  beforeSend?: () => void,
): Promise<T[]> {
  const connection = await client.acquireConnection();
  try {
    beforeSend?.();
    const result = await connection.query(positional(sql), params as unknown[]);
    return result.rows as T[];
  } finally {
    await client.releaseConnection(connection);
  }
}

/** knex's client, as far as `runBound` uses it (its connections are `pg` clients). */
interface PooledClient {
  acquireConnection(): Promise<pg.ClientBase>;
  releaseConnection(connection: pg.ClientBase): Promise<unknown>;
}

/**
 * Statements by their `?` text, rewritten with `$n` placeholders: the hot ones are a few fixed
 * texts. Long ones (a multi-row INSERT, whose text grows with its rows) are rewritten each time.
 */
const positionalCache = new Map<string, string>();
const POSITIONAL_CACHE_SIZE = 500;
const POSITIONAL_CACHED_LENGTH = 4096;

/**
 * `?` placeholders as `$1, $2, …`. A `?` in a string (`'…'`, `E'…'`, `$tag$…$tag$`), a quoted
 * identifier or a comment is text, not a placeholder; `\?` is a literal `?` (jsonb's operator).
 */
export function positional(sql: string): string {
  const cached = positionalCache.get(sql);
  if (cached !== undefined) return cached;
  let out = '';
  let n = 0;
  let i = 0;
  while (i < sql.length) {
    const end = skipText(sql, i);
    if (end > i) {
      out += sql.slice(i, end);
      i = end;
    } else if (sql[i] === '\\' && sql[i + 1] === '?') {
      out += '?';
      i += 2;
    } else if (sql[i] === '?') {
      out += `$${++n}`;
      i++;
    } else {
      out += sql[i];
      i++;
    }
  }
  if (sql.length > POSITIONAL_CACHED_LENGTH) return out;
  if (positionalCache.size >= POSITIONAL_CACHE_SIZE) positionalCache.clear();
  positionalCache.set(sql, out);
  return out;
}

/** Where the string, quoted identifier or comment starting at `i` ends (`i` itself: none starts there). */
function skipText(sql: string, i: number): number {
  const char = sql[i]!;
  const next = sql[i + 1];
  if (char === "'") return closingQuote(sql, i, false);
  if ((char === 'E' || char === 'e') && next === "'" && !/[\w$]/.test(sql[i - 1] ?? '')) return closingQuote(sql, i + 1, true);
  if (char === '"') return closingQuote(sql, i, false, '"');
  if (char === '-' && next === '-') {
    const end = sql.indexOf('\n', i);
    return end === -1 ? sql.length : end + 1;
  }
  if (char === '/' && next === '*') {
    const end = sql.indexOf('*/', i + 2);
    return end === -1 ? sql.length : end + 2;
  }
  if (char === '$' && !/[\w$]/.test(sql[i - 1] ?? '')) {
    const tag = /^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$/.exec(sql.slice(i, i + 64))?.[0];
    if (tag) {
      const end = sql.indexOf(tag, i + tag.length);
      return end === -1 ? sql.length : end + tag.length;
    }
  }
  return i;
}

/** Past the quote closing the one at `start` (doubled, it is an escaped one; with `backslashes`, so is `\'`). */
function closingQuote(sql: string, start: number, backslashes: boolean, quote = "'"): number {
  for (let i = start + 1; i < sql.length; i++) {
    if (backslashes && sql[i] === '\\') i++;
    else if (sql[i] === quote) {
      if (sql[i + 1] === quote) i++;
      else return i + 1;
    }
  }
  return sql.length;
}
