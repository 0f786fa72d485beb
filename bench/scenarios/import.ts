/**
 * Import: `import_mbox` of a generated 5,000-message mbox (upload through the API, import in the
 * worker) beside splitting and parsing the same file with the same MIME parser alone. Both warm up
 * on the whole file; then parses and imports take turns, three of each, and each side's median is
 * its figure, against drifting load.
 */
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { splitMbox } from '../../src/mail/mbox.js';
import { MalformedMessageError, parseMessage } from '../../src/mail/parse-message.js';
import { buildMbox } from '../../test/helpers/mbox-fixture.js';
import { gqlOk } from '../clients.js';
import { size, type BenchContext } from '../context.js';
import { cpuSeconds, serviceCpu, serviceCpuUsed, settle, waitFor } from '../processes.js';
import { measure, type Measurement, type ScenarioResult } from '../stats.js';

const IMPORT_MBOX = `mutation($accountId: ID!, $file: File!) { importMbox(accountId: $accountId, file: $file) { id status } }`;
const CREATE_ACCOUNT = `mutation($name: String!) { createAccount(input: { name: $name }) { id } }`;

/** Timed imports, and parses alone taken in turns with them; each side's median is its figure. */
const IMPORT_ROUNDS = 3;

/**
 * Splitting and parsing alone, at its fastest: 64 parses in flight, as the import keeps them (one
 * at a time leaves the thread idle between a parser's steps, about half again slower).
 */
async function parseAlone(path: string): Promise<{ durationMs: number; messages: number }> {
  const started = performance.now();
  let messages = 0;
  const inFlight: Promise<unknown>[] = [];
  const parsed = async (raw: Buffer) => {
    try {
      await parseMessage(raw);
    } catch (error) {
      if (!(error instanceof MalformedMessageError)) throw error;
    }
  };
  for await (const raw of splitMbox(createReadStream(path))) {
    inFlight.push(parsed(raw));
    messages++;
    if (inFlight.length >= 64) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return { durationMs: performance.now() - started, messages };
}

export async function runImport(ctx: BenchContext): Promise<ScenarioResult[]> {
  const count = size(ctx, 5_000, 1_000);
  await ctx.worker();
  const fixture = buildMbox({
    count,
    malformed: Math.round(count / 500),
    duplicates: Math.round(count / 100),
    attachmentEvery: 10,
    seed: 2026,
  });
  const path = join(ctx.env.storageDir, 'bench-import.mbox');
  await writeFile(path, fixture.mbox);
  ctx.log(`import: ${count} messages, ${(fixture.mbox.length / 1048576).toFixed(1)} MiB`);

  // Warm-ups, the same on both sides: two parses of the whole file, and an import of as many
  // messages (another account, so none is a duplicate), so the worker's code, and the parser's on
  // its thread, is compiled before anything is timed. A 200-message warm-up left the parser's
  // thread running colder code for most of the timed import than the parse alone ever does.
  await parseAlone(path);
  await parseAlone(path);
  await importThroughApi(ctx, fixture.mbox, 'bench-import-warm-up');

  // Then parse, import, parse, import, parse, import, each on a quiet machine; medians of each.
  const workerPid = (await ctx.worker()).child.pid!;
  const parses: number[] = [];
  const imports: { importMs: number; endToEndMs: number; workerCpu: number; postgres: number }[] = [];
  for (let round = 0; round < IMPORT_ROUNDS; round++) {
    await settle();
    parses.push((await parseAlone(path)).durationMs);
    await settle();
    const [workerCpuBefore, servicesBefore] = [await cpuSeconds(workerPid), await serviceCpu()];
    const { row, endToEndMs } = await importThroughApi(ctx, fixture.mbox, `bench-import-${round + 1}`);
    imports.push({
      importMs: row.finished_at.getTime() - row.started_at.getTime(),
      endToEndMs,
      workerCpu: (await cpuSeconds(workerPid)) - workerCpuBefore,
      postgres: serviceCpuUsed(servicesBefore, await serviceCpu()).postgres,
    });
  }

  const timed = imports.toSorted((a, b) => a.importMs - b.importMs)[Math.floor(IMPORT_ROUNDS / 2)]!;
  const parseMs = parses.toSorted((a, b) => a - b)[Math.floor(IMPORT_ROUNDS / 2)]!;
  const endToEndMs = imports.map((i) => i.endToEndMs).toSorted((a, b) => a - b)[Math.floor(IMPORT_ROUNDS / 2)]!;
  const perMessageMs = (seconds: number) => ((seconds * 1000) / count).toFixed(2);
  const seconds = (values: number[]) => values.map((ms) => (ms / 1000).toFixed(1)).join(', ');
  const jobwire: Measurement = { ...measure([], timed.importMs, count), p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const raw: Measurement = { ...measure([], parseMs, count), p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const ratio = jobwire.throughput / raw.throughput;
  ctx.log(`import: ${(timed.importMs / 1000).toFixed(1)} s in the worker, parse alone ${(parseMs / 1000).toFixed(1)} s (medians)`);
  return [
    {
      scenario: 'import',
      variant: `import_mbox, ${count} messages`,
      unit: 'messages',
      jobwire,
      raw,
      ratioOf: 'throughput jobwire/raw',
      ratio,
      target: '≥ 0.5×',
      pass: ratio >= 0.5,
      notes: [
        `worker (row started_at → finished_at), median of ${IMPORT_ROUNDS}: ${seconds(imports.map((i) => i.importMs))} s; parse alone, median of ${IMPORT_ROUNDS}, taken in turns with them: ${seconds(parses)} s`,
        `from the upload's first byte to COMPLETED (the upload into storage and the queue included), median ${(endToEndMs / 1000).toFixed(1)} s: ${(parseMs / endToEndMs).toFixed(2)}× parsing alone`,
        `CPU per message during the median import: worker ${perMessageMs(timed.workerCpu)} ms, PostgreSQL ${perMessageMs(timed.postgres)} ms; parse alone ${perMessageMs(parseMs / 1000)} ms of wall time`,
      ],
      extra: {
        importMs: imports.map((i) => i.importMs),
        endToEndMs: imports.map((i) => i.endToEndMs),
        parseMs: parses,
        endToEndRatio: parseMs / endToEndMs,
        fileBytes: fixture.mbox.length,
        cpuSeconds: { worker: timed.workerCpu, postgres: timed.postgres },
      },
    },
  ];
}

/** Uploads `mbox` into a new account through `importMbox` and waits for the job to complete. */
async function importThroughApi(
  ctx: BenchContext,
  mbox: Buffer,
  accountName: string,
): Promise<{ row: { started_at: Date; finished_at: Date }; endToEndMs: number }> {
  const { createAccount } = await gqlOk<{ createAccount: { id: string } }>(ctx.api.url, ctx.userToken, CREATE_ACCOUNT, {
    name: accountName,
  });
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: IMPORT_MBOX, variables: { accountId: createAccount.id, file: null } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([new Uint8Array(mbox)]), 'bench.mbox');
  const uploadStarted = performance.now();
  const response = (await (
    await fetch(ctx.api.url, { method: 'POST', headers: { authorization: `Bearer ${ctx.userToken}` }, body: form })
  ).json()) as {
    data?: { importMbox: { id: string } };
    errors?: unknown;
  };
  if (!response.data) throw new Error(`importMbox failed: ${JSON.stringify(response.errors)}`);
  const jobId = response.data.importMbox.id;
  const row = await waitFor(
    'the import to finish',
    async () => {
      const { rows } = await ctx.env.pool.query<{ status: string; started_at: Date; finished_at: Date; error: string | null }>(
        'SELECT status, started_at, finished_at, error FROM job WHERE id = $1',
        [jobId],
      );
      const current = rows[0]!;
      if (current.status === 'FAILED' || current.status === 'CANCELLED')
        throw new Error(`import ended ${current.status}: ${current.error}`);
      return current.status === 'COMPLETED' ? current : null;
    },
    600_000,
    10,
  );
  const endToEndMs = performance.now() - uploadStarted;
  return { row, endToEndMs };
}
