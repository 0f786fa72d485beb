import { jobCatalogue } from '../../jobs/registry.js';
import { withRedisDeadline } from '../../queue/job-queues.js';
import { builder } from '../builder.js';

interface QueueStats {
  queue: string;
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
  paused: number;
  prioritized: number;
}

const QueueStatsRef = builder.objectRef<QueueStats>('QueueStats').implement({
  description: 'Counts from BullMQ (Redis). Completed and failed are what Redis still keeps, not the whole history.',
  fields: (t) => ({
    queue: t.exposeString('queue'),
    waiting: t.exposeInt('waiting'),
    active: t.exposeInt('active'),
    delayed: t.exposeInt('delayed'),
    completed: t.exposeInt('completed'),
    failed: t.exposeInt('failed'),
    paused: t.exposeInt('paused'),
    prioritized: t.exposeInt('prioritized'),
  }),
});

builder.queryField('queueStats', (t) =>
  t.field({
    type: [QueueStatsRef],
    description: 'One entry per job type queue. Admins only.',
    authScopes: { admin: true },
    resolve: async (_root, _args, ctx) => {
      // Bounded like an enqueue: QUEUE_UNAVAILABLE while Redis does not answer, not a hung request.
      return withRedisDeadline(
        Promise.all(
          jobCatalogue.map(async ({ name }) => {
            const counts = await ctx.services.queues
              .get(name)
              .getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'paused', 'prioritized');
            return {
              queue: name,
              waiting: counts.waiting ?? 0,
              active: counts.active ?? 0,
              delayed: counts.delayed ?? 0,
              completed: counts.completed ?? 0,
              failed: counts.failed ?? 0,
              paused: counts.paused ?? 0,
              prioritized: counts.prioritized ?? 0,
            };
          }),
        ),
      );
    },
  }),
);
