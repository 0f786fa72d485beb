import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per process; `GET /metrics` serves it. */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

export const subscriptionGauge = new Gauge({
  name: 'jobwire_active_subscriptions',
  help: 'Open GraphQL subscriptions on this replica.',
  labelNames: ['subscription'],
  registers: [metricsRegistry],
});

export const uploadsInFlight = new Gauge({
  name: 'jobwire_uploads_in_flight',
  help: 'Uploads this replica is reading now (each is held in memory while it is read; at most MAX_CONCURRENT_UPLOADS).',
  registers: [metricsRegistry],
});

export const slowSubscribersCutOff = new Counter({
  name: 'jobwire_slow_subscribers_cut_off_total',
  help: 'Subscriptions ended with SUBSCRIBER_TOO_SLOW because their client did not read its events.',
  registers: [metricsRegistry],
});

export const jobTransitions = new Counter({
  name: 'jobwire_job_transitions_total',
  help: 'Job status changes made by this process, by type and new status.',
  labelNames: ['type', 'status'],
  registers: [metricsRegistry],
});

export const jobDuration = new Histogram({
  name: 'jobwire_job_duration_seconds',
  help: 'Duration of finished attempts, by type and outcome.',
  labelNames: ['type', 'status'],
  buckets: [0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
  registers: [metricsRegistry],
});
