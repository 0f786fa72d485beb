/**
 * Job types that exist only in the benchmark's worker: they isolate what Jobwire adds around a
 * handler (row lifecycle, coalesced progress, events) from what a real handler does.
 */
import { z } from 'zod';
import { defineJob } from '../src/engine/define-job.js';

/** Does nothing: the job lifecycle alone. Runs 10 at a time, like the raw baseline. */
export const benchNoopJob = defineJob({
  name: 'bench_noop',
  description: 'Benchmark: a job that does nothing.',
  graphql: { mutation: 'benchNoop', typeName: 'BenchNoopJob' },
  unit: 'jobs',
  args: z.object({}),
  input: z.object({}).loose(),
  output: z.object({}),
  options: { concurrency: 10, attempts: 1 },
  async prepare() {
    return { input: {}, accountId: null };
  },
  async handler() {
    return {};
  },
});

/** Reports `steps` progress updates `intervalMs` apart: a steady stream of events to fan out. */
export const benchProgressJob = defineJob({
  name: 'bench_progress',
  description: 'Benchmark: reports progress at a steady pace.',
  graphql: { mutation: 'benchProgress', typeName: 'BenchProgressJob' },
  unit: 'steps',
  args: z.object({}),
  input: z.object({ steps: z.number().int().positive(), intervalMs: z.number().int().positive() }),
  output: z.object({ steps: z.number().int() }),
  options: { attempts: 1 },
  async prepare() {
    return { input: { steps: 1, intervalMs: 100 }, accountId: null };
  },
  async handler(input, ctx) {
    for (let step = 1; step <= input.steps; step++) {
      await new Promise((resolve) => setTimeout(resolve, input.intervalMs));
      ctx.checkpoint();
      ctx.progress({ processed: step, total: input.steps, message: `step ${step}` });
    }
    return { steps: input.steps };
  },
});

export const benchJobs = [benchNoopJob, benchProgressJob];
