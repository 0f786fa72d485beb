/**
 * Schedules as data (issue 11): an admin sees the catalogue's schedules and changes them at run
 * time; the change reaches both sidecars without a restart, each tick still fires once, a
 * disabled schedule does not fire, and SKIP_IF_RUNNING skips ticks while the previous run waits.
 * Real processes: one API, two worker sidecars with the scheduler on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { type ApiProc, type Proc, startApi, startWorker } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

const EVERY_SECOND = '*/1 * * * * *';
const SCHEDULES = `{ schedules { id jobType cron timezone enabled overlap nextRunAt lastRunAt lastJob { id } } }`;
const UPDATE = `mutation($id: String!, $input: ScheduleInput!) {
  updateSchedule(id: $id, input: $input) { id cron timezone enabled overlap nextRunAt }
}`;
const PURGE = 'purge-archive-trash-daily';
const RETENTION = 'apply-retention-daily';

interface Run {
  id: string;
  status: string;
  trigger: string;
  idempotency_key: string | null;
}

let env: TestEnv;
let api: ApiProc;
let workers: Proc[];
let admin: string;

beforeAll(async () => {
  env = await createTestEnv({ SCHEDULER_ENABLED: 'true' });
  [api, ...workers] = await Promise.all([startApi(env.vars), startWorker(env.vars, 'sidecar-a'), startWorker(env.vars, 'sidecar-b')]);
  admin = await env.token('root', 'admin');
}, 120_000);

afterAll(async () => {
  await Promise.all([api, ...(workers ?? [])].filter(Boolean).map((proc) => proc.stop()));
  await env?.cleanup();
});

/** The runs a schedule started, oldest first. */
const runsOf = (scheduleId: string) =>
  env.sql<Run>(`SELECT id, status, trigger, idempotency_key FROM job WHERE tags @> ARRAY[$1]::text[] ORDER BY created_at, id`, [
    `schedule:${scheduleId}`,
  ]);

const update = async (id: string, input: Record<string, unknown>) =>
  (await gqlOk<{ updateSchedule: any }>(api.url, admin, UPDATE, { id, input })).updateSchedule;

/** Waits until `scheduleId` has started `more` runs beyond `from`: the clock of these tests, instead of sleeping. */
async function ticksOf(scheduleId: string, from: number, more: number): Promise<void> {
  await waitFor(`${more} more runs of ${scheduleId}`, async () => (await runsOf(scheduleId)).length >= from + more, 30_000, 100);
}

describe('schedules as data', () => {
  it("lists the catalogue's schedules with their settings in effect", async () => {
    const { schedules } = await gqlOk<{ schedules: any[] }>(api.url, admin, SCHEDULES);
    expect(schedules.map((schedule) => schedule.id).sort()).toEqual([RETENTION, PURGE].sort());
    expect(schedules.find((schedule) => schedule.id === PURGE)).toMatchObject({
      jobType: 'purge_archive_trash',
      cron: '0 4 * * *',
      enabled: true,
      overlap: 'SKIP_IF_RUNNING',
      lastJob: null,
    });
    expect(Date.parse(schedules[0].nextRunAt)).toBeGreaterThan(Date.now());
  });

  it('fires a changed cron on the sidecars without a restart, once per tick', async () => {
    const changed = await update(PURGE, { cron: EVERY_SECOND, overlap: 'ALLOW' });
    expect(changed).toMatchObject({ cron: EVERY_SECOND, overlap: 'ALLOW', enabled: true });
    await ticksOf(PURGE, 0, 4);
    const runs = await runsOf(PURGE);
    expect(runs.every((run) => run.trigger === 'SCHEDULE')).toBe(true);
    // One run per tick: each tick's time appears once, and ticks are whole seconds apart.
    const tickTimes = runs.map((run) => Number(/:(\d+)$/.exec(run.idempotency_key ?? '')?.[1]));
    expect(new Set(tickTimes).size).toBe(runs.length);
    expect(tickTimes.every((time) => Number.isInteger(time) && time % 1000 === 0)).toBe(true);
    const { schedules } = await gqlOk<{ schedules: any[] }>(api.url, admin, SCHEDULES);
    expect(schedules.find((schedule) => schedule.id === PURGE)?.lastJob?.id).toBe((await runsOf(PURGE)).at(-1)?.id);
  });

  it('does not fire while disabled, and SKIP_IF_RUNNING skips ticks while the previous run waits', async () => {
    // The retention schedule ticks every second beside it, as the test's clock.
    await update(RETENTION, { cron: EVERY_SECOND, overlap: 'ALLOW' });
    const disabled = await update(PURGE, { enabled: false });
    expect(disabled).toMatchObject({ enabled: false, nextRunAt: null });
    // A tick already on its way when the change landed may still start a run; after two clock ticks none can.
    await ticksOf(RETENTION, (await runsOf(RETENTION)).length, 2);
    const whileDisabled = (await runsOf(PURGE)).length;
    await ticksOf(RETENTION, (await runsOf(RETENTION)).length, 3);
    expect((await runsOf(PURGE)).length).toBe(whileDisabled);

    // Its runs held in the queue: the first tick starts one, the next ones find it waiting and skip.
    await gqlOk(api.url, admin, 'mutation { pauseJobType(type: purge_archive_trash) { paused } }');
    try {
      await update(PURGE, { enabled: true, overlap: 'SKIP_IF_RUNNING' });
      await ticksOf(PURGE, whileDisabled, 1);
      await ticksOf(RETENTION, (await runsOf(RETENTION)).length, 3);
      const runs = await runsOf(PURGE);
      expect(runs).toHaveLength(whileDisabled + 1);
      expect(runs.at(-1)?.status).toBe('PENDING');
    } finally {
      await gqlOk(api.url, admin, 'mutation { resumeJobType(type: purge_archive_trash) { paused } }');
      await update(PURGE, { enabled: false });
      await update(RETENTION, { enabled: false });
    }
  });

  it('runs a schedule by hand, and refuses what is not the caller’s to change', async () => {
    const { runScheduleNow } = await gqlOk<{ runScheduleNow: any }>(
      api.url,
      admin,
      `mutation { runScheduleNow(id: "${PURGE}") { id type trigger tags } }`,
    );
    expect(runScheduleNow).toMatchObject({ type: 'purge_archive_trash', trigger: 'SCHEDULE', tags: [`schedule:${PURGE}`] });

    const user = await env.token('alice');
    expect((await gqlOk<{ schedules: any[] }>(api.url, user, SCHEDULES)).schedules).toEqual([]);
    expect((await gql(api.url, user, UPDATE, { id: PURGE, input: { enabled: true } })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gql(api.url, user, `mutation { runScheduleNow(id: "${PURGE}") { id } }`)).errors?.[0]?.extensions?.code).toBe(
      'NOT_FOUND',
    );
    for (const input of [{ cron: 'every day' }, { timezone: 'Mars/Olympus' }]) {
      expect((await gql(api.url, admin, UPDATE, { id: PURGE, input })).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    expect((await gql(api.url, admin, UPDATE, { id: 'no-such-schedule', input: {} })).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});
