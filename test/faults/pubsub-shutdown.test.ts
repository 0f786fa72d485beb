/**
 * A subscription that ends while its process shuts down stops listening after the Redis
 * connections may already be closed: that must neither fail nor end the process with an unhandled
 * rejection (an API replica stopped with SIGTERM while a dashboard's streams were open exited 1).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { JobPubSub } from '../../src/pubsub/pubsub.js';
import { topics } from '../../src/pubsub/topics.js';
import { redisUrl } from '../helpers/urls.js';

describe('a listener that stops after the pub/sub connections closed', () => {
  it('stops quietly, with no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      const pubsub = new JobPubSub(redisUrl(), `jwtest-${randomBytes(5).toString('hex')}`, createLogger('silent', { process: 'test' }));
      const stops = await Promise.all([pubsub.listen(topics.jobChanges(), () => {}), pubsub.listen(topics.jobTypes(), () => {})]);
      await pubsub.close();
      for (const stop of stops) stop();
      // A rejection is reported once the microtasks and the I/O callbacks of this turn have run.
      await new Promise((resolve) => setTimeout(resolve, 0));
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', record);
    }
  });
});
