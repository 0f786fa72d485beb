/**
 * History: `jobs(filter, first: 50)` over a million seeded rows, through GraphQL over HTTP, beside
 * the very SQL the resolver runs, sent directly. Each variant alternates the two, one query at a
 * time, so both see the same moment of a noisy machine. A few variants also time a bare HTTP
 * endpoint on the same SQL (bench/bare-history-server.ts): what any JSON API adds here, the floor
 * of the added latency.
 */
import pg from 'pg';
import { TOTAL_COUNT_CAP } from '../../src/engine/job-history.js';
import { jobCatalogue } from '../../src/jobs/registry.js';
import { gql, postJson } from '../clients.js';
import { size, type BenchContext } from '../context.js';
import { freePort, startWorker } from '../processes.js';
import { measure, type ScenarioResult } from '../stats.js';

/** Owners in the seeded history; the bench user is one of them. */
export const SEED_OWNERS = 100;

/** The `customer:N` tag of a seeded row (SQL over its hash `h`). */
const SEED_CUSTOMER_TAG = `'customer:' || (h / 10 % 500)`;

/** The account ids of one seeded owner (5 each). */
export const seededAccount = (owner: number, n: number) => `md5('acct-${owner}-${n}')::uuid`;

/**
 * Seeds `rows` job rows in one INSERT … SELECT generate_series: newest first every ~30 s over about
 * a year, 100 owners, every catalogue type, 90% COMPLETED, 5% FAILED, 3% CANCELLED, 1% PENDING,
 * 1% ACTIVE. Tags: `nightly` on the 5% started by a schedule, `customer:N` (500 customers) on 30%,
 * `priority` on 2%. Secondary indexes are dropped first and rebuilt after, as a bulk load would.
 */
export async function seedHistory(ctx: BenchContext, rows: number): Promise<number> {
  const started = performance.now();
  const { pool } = ctx.env;
  const types = jobCatalogue.map((declaration) => declaration.name);
  const indexes = (
    await pool.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'job' AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'job'::regclass)",
    )
  ).rows;
  for (const index of indexes) await pool.query(`DROP INDEX "${index.indexname}"`);
  await pool.query(
    `INSERT INTO job (id, type, status, progress, processed, total, message, attempts, max_attempts, priority, payload, result,
                      error, trigger, idempotency_key, owner_id, account_id, created_at, updated_at, started_at, finished_at, version, tags)
     SELECT md5('seed-' || g)::uuid,
            ($2::text[])[1 + (h % array_length($2::text[], 1))],
            s.status,
            CASE WHEN s.status = 'COMPLETED' THEN 100 ELSE 40 END,
            h % 500, 500, NULL, 1, 3, NULL,
            jsonb_build_object('accountId', acct, 'action', 'MARK_READ'),
            CASE WHEN s.status = 'COMPLETED' THEN '{"matched": 500, "affected": 480}'::jsonb END,
            CASE WHEN s.status = 'FAILED' THEN 'the IMAP server refused the login' END,
            CASE WHEN h % 20 = 0 THEN 'SCHEDULE' ELSE 'API' END,
            NULL,
            'user-' || o,
            acct,
            t, t + interval '5 seconds',
            CASE WHEN s.status <> 'PENDING' THEN t + interval '1 second' END,
            CASE WHEN s.status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN t + interval '5 seconds' END,
            3,
            array_remove(ARRAY[CASE WHEN h % 20 = 0 THEN 'nightly' END, CASE WHEN h % 10 < 3 THEN ${SEED_CUSTOMER_TAG} END,
                               CASE WHEN h % 50 = 1 THEN 'priority' END], NULL)
       FROM generate_series(1, $1::int) AS g,
            LATERAL (SELECT abs(hashtext('h' || g)) AS h, abs(hashtext('o' || g)) % ${SEED_OWNERS} AS o) AS r,
            LATERAL (SELECT md5('acct-' || o || '-' || (h % 5))::uuid AS acct,
                            now() - interval '10 minutes' - ($1::int - g) * interval '30 seconds' - (h % 1000) * interval '1 millisecond' AS t) AS v,
            LATERAL (SELECT CASE WHEN h % 100 < 90 THEN 'COMPLETED' WHEN h % 100 < 95 THEN 'FAILED' WHEN h % 100 < 98 THEN 'CANCELLED'
                                 WHEN h % 100 < 99 THEN 'PENDING' ELSE 'ACTIVE' END AS status) AS s`,
    [rows, types],
  );
  for (const index of indexes) await pool.query(index.indexdef);
  // As autovacuum would leave it: the visibility map set, so counts can be index-only scans.
  await pool.query('VACUUM ANALYZE job');
  // The load's dirty pages written now, not by the checkpointer spread over the next minutes,
  // under the scenarios that follow (a superuser's or pg_checkpoint's right; without it, skipped).
  await pool.query('CHECKPOINT').catch(() => {});
  return performance.now() - started;
}

const JOBS = `query($filter: JobFilter, $first: Int, $after: String) {
  jobs(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id type status progress processed total message attempts error trigger createdAt startedAt finishedAt } }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** The same page with `totalCount`: the resolver then also runs `countJobHistory`'s SQL. */
const JOBS_WITH_COUNT = JOBS.replace('pageInfo { hasNextPage endCursor }', 'pageInfo { hasNextPage endCursor } totalCount');

/** `countJobHistory`'s SQL (src/engine/job-history.ts) for the same scope. */
function countSql(ownerId: string | null, filter: Filter): [string, unknown[]] {
  const [page, params] = resolverSql(ownerId, filter, 0, null);
  const where = /FROM job (WHERE .*?) ORDER BY/s.exec(page)?.[1] ?? '';
  return [`SELECT count(*)::int AS n FROM (SELECT 1 FROM job ${where} LIMIT ${TOTAL_COUNT_CAP}) AS matching`, params.slice(0, -1)];
}

interface Filter {
  types?: string[];
  statuses?: string[];
  accountId?: string;
  createdAfter?: string;
  createdBefore?: string;
  tags?: string[];
}

/** The resolver's SQL for `jobs` (src/graphql/schema/job.ts), with $n placeholders. */
function resolverSql(
  ownerId: string | null,
  filter: Filter,
  first: number,
  after: { createdAt: string; id: string } | null,
): [string, unknown[]] {
  const clauses: string[] = [];
  const params: unknown[] = [];
  const p = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (ownerId) clauses.push(`owner_id = ${p(ownerId)}`);
  if (filter.types?.length) clauses.push(`type IN (${filter.types.map(p).join(', ')})`);
  if (filter.statuses?.length) clauses.push(`status IN (${filter.statuses.map(p).join(', ')})`);
  if (filter.accountId) clauses.push(`account_id = ${p(filter.accountId)}`);
  if (filter.createdAfter) clauses.push(`created_at >= ${p(filter.createdAfter)}`);
  if (filter.createdBefore) clauses.push(`created_at < ${p(filter.createdBefore)}`);
  if (filter.tags?.length) clauses.push(`tags @> ${p(`{${filter.tags.map((tag) => `"${tag}"`).join(',')}}`)}::text[]`);
  if (after) clauses.push(`(created_at, id) < (${p(after.createdAt)}::timestamptz, ${p(after.id)}::uuid)`);
  const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
  return [
    `SELECT s.snapshot, page.* FROM (SELECT pg_current_snapshot()::text AS snapshot) s
     LEFT JOIN LATERAL (SELECT *, created_at::text AS cursor_ts FROM job ${where} ORDER BY created_at DESC, id DESC LIMIT ${p(first + 1)}) page ON true`,
    params,
  ];
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const [createdAt, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  return { createdAt: createdAt!, id: id! };
}

interface Variant {
  name: string;
  admin: boolean;
  filter: Filter;
  /** Walk this many pages by cursor instead of repeating the first page. */
  deepPages?: number;
  /** Also select `totalCount` (raw: also run the count). */
  totalCount?: boolean;
  /** Also time the bare HTTP endpoint (bench/bare-history-server.ts) on the same SQL: the floor of any JSON API here. */
  floor?: boolean;
}

export async function runHistory(ctx: BenchContext, seededRows: number): Promise<ScenarioResult[]> {
  const owner = Number(ctx.userId.replace('user-', ''));
  const account = (await ctx.env.pool.query<{ id: string }>(`SELECT ${seededAccount(owner, 2)} AS id`)).rows[0]!.id;
  const monthAgo = new Date(Date.now() - 30 * 24 * 3600 * 1000);
  const twoMonthsAgo = new Date(Date.now() - 60 * 24 * 3600 * 1000);
  const variants: Variant[] = [
    { name: 'admin, no filter', admin: true, filter: {} },
    { name: 'user, no filter', admin: false, filter: {}, floor: true },
    { name: 'user, status FAILED', admin: false, filter: { statuses: ['FAILED'] } },
    { name: 'user, type import_mbox', admin: false, filter: { types: ['import_mbox'] } },
    { name: 'user, account', admin: false, filter: { accountId: account } },
    {
      name: 'user, 30-day window a month back',
      admin: false,
      filter: { createdAfter: twoMonthsAgo.toISOString(), createdBefore: monthAgo.toISOString() },
    },
    { name: 'admin, PENDING+ACTIVE', admin: true, filter: { statuses: ['PENDING', 'ACTIVE'] } },
    { name: 'admin, type + status', admin: true, filter: { types: ['bulk_operation'], statuses: ['FAILED'] } },
    // Tags: a common one, a rare one, and two that meet rarely (an index intersection, or a long walk).
    { name: 'user, tag nightly', admin: false, filter: { tags: ['nightly'] }, floor: true },
    { name: 'user, tag customer:7', admin: false, filter: { tags: ['customer:7'] } },
    { name: 'admin, tags nightly + customer:7', admin: true, filter: { tags: ['nightly', 'customer:7'] } },
    { name: 'user, deep pages by cursor', admin: false, filter: {}, deepPages: size(ctx, 200, 40), floor: true },
    { name: 'user, no filter, with totalCount', admin: false, filter: {}, totalCount: true },
    { name: 'admin, status FAILED, with totalCount', admin: true, filter: { statuses: ['FAILED'] }, totalCount: true },
  ];
  // At least 2,000 samples per figure: a p99 of 200 is two samples' worth, noise.
  const iterations = size(ctx, 2_000, 200);
  // As autovacuum would leave the table: the scenarios run before this one (in a repetition) wrote
  // thousands of rows, and counts over unvacuumed pages read the heap.
  await ctx.env.pool.query('VACUUM ANALYZE job');
  const raw = new pg.Client({ connectionString: ctx.env.databaseUrl });
  await raw.connect();
  // The count beside the page, on a second connection, as the resolver runs it.
  const rawCount = new pg.Client({ connectionString: ctx.env.databaseUrl });
  await rawCount.connect();
  const barePort = await freePort();
  const bare = await startWorker(
    'bench/bare-history-server.ts',
    { ...ctx.env.vars, BARE_HISTORY_PORT: String(barePort) },
    'bare-history',
    'bare history server ready',
  );
  const bareUrl = `http://127.0.0.1:${barePort}/`;
  const results: ScenarioResult[] = [];
  try {
    // Warm-up, untimed, on all three sides: the first variant would otherwise be timed on code not
    // yet compiled (its first 200 samples had twice the p99 of the rest) and on a fresh bare endpoint.
    const [warmSql, warmParams] = resolverSql(ctx.userId, {}, 50, null);
    for (let i = 0; i < size(ctx, 500, 50); i++) {
      await gql(ctx.api.url, ctx.userToken, JOBS, { filter: {}, first: 50, after: null });
      await raw.query(warmSql, warmParams);
      await postJson(bareUrl, { sql: warmSql, params: warmParams, first: 50 });
    }
    for (const variant of variants) {
      const token = variant.admin ? ctx.adminToken : ctx.userToken;
      const ownerId = variant.admin ? null : ctx.userId;
      const jobwireLatencies: number[] = [];
      const rawLatencies: number[] = [];
      const bareLatencies: number[] = [];
      let rowsSeen = 0;
      const once = async (after: string | null, record: boolean): Promise<string | null> => {
        const t0 = performance.now();
        const response = await gql<{ jobs: { edges: unknown[]; pageInfo: { endCursor: string | null } } }>(
          ctx.api.url,
          token,
          variant.totalCount ? JOBS_WITH_COUNT : JOBS,
          {
            filter: variant.filter,
            first: 50,
            after,
          },
        );
        const t1 = performance.now();
        if (response.errors?.length || !response.data) throw new Error(`history ${variant.name}: ${JSON.stringify(response.errors)}`);
        const [sql, params] = resolverSql(ownerId, variant.filter, 50, after ? decodeCursor(after) : null);
        const t2 = performance.now();
        const [{ rows: withSnapshot }] = await Promise.all([
          raw.query(sql, params),
          variant.totalCount ? rawCount.query(...countSql(ownerId, variant.filter)) : null,
        ]);
        const rows = withSnapshot.filter((row) => row.id !== null);
        const t3 = performance.now();
        if (variant.floor) {
          const answer = await postJson<{ data?: { jobs: { edges: unknown[] } } }>(bareUrl, { sql, params, first: 50 });
          if (answer.data?.jobs.edges.length !== response.data.jobs.edges.length)
            throw new Error(`history ${variant.name}: the bare endpoint and GraphQL disagree`);
          if (record) bareLatencies.push(performance.now() - t3);
        }
        if (record) {
          jobwireLatencies.push(t1 - t0);
          rawLatencies.push(t3 - t2);
          rowsSeen += response.data.jobs.edges.length;
        }
        if (Math.min(rows.length, 50) !== response.data.jobs.edges.length)
          throw new Error(`history ${variant.name}: GraphQL and SQL disagree`);
        return response.data.jobs.pageInfo.endCursor;
      };
      for (let i = 0; i < 10; i++) await once(null, false);
      const started = performance.now();
      if (variant.deepPages) {
        // The same walk from the first page again, until there are as many samples as the other variants have.
        while (jobwireLatencies.length < iterations) {
          let after: string | null = null;
          for (let page = 0; page < variant.deepPages; page++) {
            after = await once(after, true);
            if (!after) break;
          }
        }
      } else {
        for (let i = 0; i < iterations; i++) await once(null, true);
      }
      const duration = performance.now() - started;
      const jobwire = measure(jobwireLatencies, duration * (sum(jobwireLatencies) / (sum(jobwireLatencies) + sum(rawLatencies))));
      const baseline = measure(rawLatencies, duration * (sum(rawLatencies) / (sum(jobwireLatencies) + sum(rawLatencies))));
      const ratio = jobwire.p99 / baseline.p99;
      const addedMsP50 = jobwire.p50 - baseline.p50;
      const floorAddedMsP50 = variant.floor ? measure(bareLatencies, duration).p50 - baseline.p50 : null;
      results.push({
        scenario: 'history',
        variant: variant.name,
        unit: 'queries',
        jobwire,
        raw: baseline,
        ratioOf: 'p99 jobwire/raw',
        ratio,
        target: 'p99 < 20 ms, ≤ 1 ms added at p50',
        pass: jobwire.p99 < 20 && addedMsP50 <= 1,
        deciding: { name: 'added p50 ms', value: addedMsP50 },
        notes: [
          `added at p50: ${addedMsP50.toFixed(2)} ms over the same SQL sent directly (${jobwireLatencies.length} queries each)`,
          ...(floorAddedMsP50 === null
            ? []
            : [
                `a bare HTTP endpoint (node:http + pg + JSON.stringify, the same SQL and fields) adds ${floorAddedMsP50.toFixed(2)} ms at p50`,
              ]),
          ...(variant.deepPages ? [`walks of ${variant.deepPages} pages by cursor, ${rowsSeen} rows in all`] : []),
        ],
        extra: {
          rows: seededRows,
          avgRowsPerPage: rowsSeen / jobwireLatencies.length,
          addedMsP50,
          ...(floorAddedMsP50 === null ? {} : { floorAddedMsP50 }),
        },
      });
      ctx.log(
        `history ${variant.name}: p50 +${addedMsP50.toFixed(2)} ms${floorAddedMsP50 === null ? '' : ` (bare HTTP +${floorAddedMsP50.toFixed(2)} ms)`}, p99 ${jobwire.p99.toFixed(1)} ms vs raw ${baseline.p99.toFixed(1)} ms`,
      );
    }
  } finally {
    await raw.end();
    await rawCount.end();
    await bare.stop();
  }
  return results;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
