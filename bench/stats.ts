/** Figures of one side of a scenario: how many operations, how fast, and their latencies in ms. */
export interface Measurement {
  count: number;
  durationMs: number;
  /** Operations per second over `durationMs`. */
  throughput: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** One line of the results: Jobwire's path beside its raw baseline, measured in the same run. */
export interface ScenarioResult {
  scenario: string;
  variant: string;
  /** What one operation is: "requests", "jobs", "events", "messages"... */
  unit: string;
  jobwire: Measurement | null;
  raw: Measurement | null;
  /** How the ratio is computed, e.g. "throughput jobwire/raw" or "p99 jobwire/raw". */
  ratioOf: string;
  ratio: number | null;
  target: string;
  /** null: reported only, no target. */
  pass: boolean | null;
  notes: string[];
  extra?: Record<string, unknown>;
  /** The figure the verdict rests on where it is not the ratio (history's added p50, the fan-out's CPU per delivery). */
  deciding?: { name: string; value: number };
  /** With `--repeat N`: every repetition's headline figures (this row is the median one's). */
  repeats?: RepeatFigures[];
}

/** One repetition's headline figures of a row. */
export interface RepeatFigures {
  ratio: number | null;
  deciding: number | null;
  pass: boolean | null;
  jobwire: Pick<Measurement, 'throughput' | 'p50' | 'p99'> | null;
  raw: Pick<Measurement, 'throughput' | 'p50' | 'p99'> | null;
}

const headline = (m: Measurement | null) => (m ? { throughput: m.throughput, p50: m.p50, p99: m.p99 } : null);

/** The value if it is a finite number, else null (a NaN would break a sort). */
const finite = (value: number | null | undefined): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/**
 * Folds the rows of several repetitions into one row per scenario and variant: the repetition with
 * the median of the figure its verdict rests on (`deciding`, else the ratio, else the p50) stands
 * for it, with every repetition's figures in `repeats` and their spread in a note.
 */
export function combineRepeats(repetitions: ScenarioResult[][]): ScenarioResult[] {
  if (repetitions.length === 1) return repetitions[0]!;
  const keyOf = (r: ScenarioResult) => `${r.scenario} | ${r.variant}`;
  const order: string[] = [];
  const rows = new Map<string, ScenarioResult[]>();
  for (const repetition of repetitions) {
    for (const row of repetition) {
      const key = keyOf(row);
      if (!rows.has(key)) {
        order.push(key);
        rows.set(key, []);
      }
      rows.get(key)!.push(row);
    }
  }
  return order.map((key) => {
    const all = rows.get(key)!;
    const rank = (r: ScenarioResult) => finite(r.deciding?.value) ?? finite(r.ratio) ?? finite(r.jobwire?.p50) ?? 0;
    const sorted = [...all].sort((a, b) => rank(a) - rank(b));
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    const spread = (values: (number | null | undefined)[], digits: number) => {
      const known = values.filter((v): v is number => finite(v) !== null);
      return known.length ? `${Math.min(...known).toFixed(digits)}–${Math.max(...known).toFixed(digits)}` : '—';
    };
    const decidingSpread = median.deciding
      ? `${median.deciding.name} ${spread(
          all.map((r) => r.deciding?.value),
          2,
        )}, `
      : '';
    const note = `over ${all.length} repetitions (median shown): ${decidingSpread}ratio ${spread(
      all.map((r) => r.ratio),
      2,
    )}, Jobwire p99 ${spread(
      all.map((r) => r.jobwire?.p99),
      1,
    )} ms, ${all.filter((r) => r.pass).length} of ${all.length} within target`;
    return {
      ...median,
      notes: [...median.notes, note],
      repeats: all.map((r) => ({
        ratio: r.ratio,
        deciding: r.deciding?.value ?? null,
        pass: r.pass,
        jobwire: headline(r.jobwire),
        raw: headline(r.raw),
      })),
    };
  });
}

/** Nearest-rank percentile of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function measure(latenciesMs: number[], durationMs: number, count = latenciesMs.length): Measurement {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    count,
    durationMs,
    throughput: durationMs > 0 ? (count / durationMs) * 1000 : NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  };
}

/**
 * One round of each side: A then B in even rounds, B then A in odd ones (A B B A …), so that over
 * the rounds neither side always runs right after the other, on what the other left behind.
 */
export async function inTurns<A, B>(round: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (round % 2 === 0) {
    const first = await a();
    return [first, await b()];
  }
  const first = await b();
  return [await a(), first];
}

/** Runs `total` operations with `concurrency` in flight; returns each one's latency. */
export async function runConcurrent(
  total: number,
  concurrency: number,
  op: (i: number) => Promise<void>,
): Promise<{ latencies: number[]; durationMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      for (let i = next++; i < total; i = next++) {
        const t0 = performance.now();
        await op(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { latencies, durationMs: performance.now() - started };
}

const fmt = (value: number | null | undefined, digits = 1): string =>
  value === null || value === undefined || Number.isNaN(value) ? '—' : value >= 1000 ? Math.round(value).toString() : value.toFixed(digits);

function side(m: Measurement | null, unit: string): string[] {
  if (!m) return ['—', '—', '—', '—', '—'];
  return [`${fmt(m.throughput)} ${unit}/s`, fmt(m.p50), fmt(m.p90), fmt(m.p99), fmt(m.max)];
}

/** The results as a fixed-width table: each scenario on two lines, Jobwire then raw. */
export function formatTable(results: ScenarioResult[]): string {
  const header = ['scenario', 'side', 'throughput', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'ratio', 'target', 'result'];
  const rows: string[][] = [];
  for (const r of results) {
    const name = r.variant ? `${r.scenario}: ${r.variant}` : r.scenario;
    const verdict = r.pass === null ? 'report' : r.pass ? 'pass' : 'MISS';
    rows.push([
      name,
      'jobwire',
      ...side(r.jobwire, r.unit),
      r.ratio === null ? '—' : `${fmt(r.ratio, 2)}× (${r.ratioOf})`,
      r.target,
      verdict,
    ]);
    if (r.raw) rows.push(['', 'raw', ...side(r.raw, r.unit), '', '', '']);
    for (const note of r.notes) rows.push(['', `  ${note}`, '', '', '', '', '', '', '', '']);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.filter((row) => !row[1]!.startsWith('  ')).map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const row of rows) out.push(row[1]!.startsWith('  ') ? `${''.padEnd(widths[0]!)}  ${row[1]!.trim()}` : line(row));
  return out.join('\n');
}

/** The same table in Markdown, for the README's Performance section. */
export function formatMarkdown(results: ScenarioResult[]): string {
  const out = [
    '| scenario | jobwire | raw baseline | p50 / p90 / p99 / max ms (jobwire) | p50 / p90 / p99 / max ms (raw) | ratio | target | result |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const lat = (m: Measurement | null) => (m ? `${fmt(m.p50)} / ${fmt(m.p90)} / ${fmt(m.p99)} / ${fmt(m.max)}` : '—');
  for (const r of results) {
    const verdict = r.pass === null ? 'reported' : r.pass ? 'pass' : '**miss**';
    out.push(
      `| ${r.variant ? `${r.scenario}: ${r.variant}` : r.scenario} | ${r.jobwire ? `${fmt(r.jobwire.throughput)} ${r.unit}/s` : '—'} | ${
        r.raw ? `${fmt(r.raw.throughput)} ${r.unit}/s` : '—'
      } | ${lat(r.jobwire)} | ${lat(r.raw)} | ${r.ratio === null ? '—' : `${fmt(r.ratio, 2)}× ${r.ratioOf}`} | ${r.target} | ${verdict} |`,
    );
  }
  return out.join('\n');
}
