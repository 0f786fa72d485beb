/**
 * The history scenario's floor: a bare HTTP endpoint that runs the SQL it is sent and answers the
 * page as Jobwire's `jobs` query does (the same fields, cursors and pageInfo, as JSON). No GraphQL,
 * no auth, no ORM: what any JSON API over HTTP adds to the same SQL on this machine.
 *
 * POST { sql, params, first } → { data: { jobs: { edges, pageInfo } } }.
 */
import { createServer } from 'node:http';
import pg from 'pg';

const { DATABASE_URL, BARE_HISTORY_PORT } = process.env as Record<string, string>;
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });

const iso = (value: Date | null) => (value ? value.toISOString() : null);

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', async () => {
    try {
      const { sql, params, first } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        sql: string;
        params: unknown[];
        first: number;
      };
      const rows = (await pool.query(sql, params)).rows.filter((row) => row.id !== null);
      const edges = rows.slice(0, first).map((row) => ({
        cursor: Buffer.from(`${row.cursor_ts}|${row.id}`).toString('base64url'),
        node: {
          id: row.id,
          type: row.type,
          status: row.status,
          progress: row.progress,
          processed: row.processed,
          total: row.total,
          message: row.message,
          attempts: row.attempts,
          error: row.error,
          trigger: row.trigger,
          createdAt: iso(row.created_at),
          startedAt: iso(row.started_at),
          finishedAt: iso(row.finished_at),
        },
      }));
      const body = JSON.stringify({
        data: { jobs: { edges, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null } } },
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    } catch (error) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ message: String(error) }] }));
    }
  });
});
server.listen(Number(BARE_HISTORY_PORT), '127.0.0.1', () => console.log('bare history server ready'));
process.on('SIGTERM', () => {
  server.close();
  void pool.end().then(() => process.exit(0));
});
