import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, gqlOk } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';

let env: TestEnv;
let system: InProcessSystem;
let admin: string;

/** An archive row with one stored file, trashed `daysAgo` days ago (null: not trashed). */
async function archive(daysAgo: number | null): Promise<{ id: string; key: string }> {
  const id = randomUUID();
  const key = `archives/test/${id}.eml`;
  await system.apiServices.storage.put(key, `Subject: ${id}\r\n\r\nbody\r\n`);
  await env.sql(
    `INSERT INTO archive (id, account_id, owner_id, message_id, size, content_hash, files, created_at, deleted_at)
     VALUES ($1, $2, 'alice', $3, 10, 'h', $4, now(), CASE WHEN $5::int IS NULL THEN NULL ELSE now() - make_interval(days => $5::int) END)`,
    [
      id,
      randomUUID(),
      randomUUID(),
      JSON.stringify([{ kind: 'eml', key, filename: null, contentType: 'message/rfc822', size: 10 }]),
      daysAgo,
    ],
  );
  return { id, key };
}

async function purge() {
  const { purgeArchiveTrash } = await gqlOk<{ purgeArchiveTrash: { id: string } }>(
    system.url,
    admin,
    'mutation { purgeArchiveTrash { id } }',
  );
  return waitFor('purge', async () => {
    const { job } = await gqlOk<{ job: any }>(
      system.url,
      admin,
      `query($id: ID!) { job(id: $id) { status ... on PurgeArchiveTrashJob { output { enabled retentionDays purged filesDeleted } } } }`,
      { id: purgeArchiveTrash.id },
    );
    return job.status === 'COMPLETED' ? job.output : null;
  });
}

const exists = (id: string) => env.sql('SELECT 1 FROM archive WHERE id = $1', [id]).then((rows) => rows.length === 1);

beforeAll(async () => {
  env = await createTestEnv();
  system = await startInProcess(env);
  admin = await env.token('ops', 'admin');
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('purge_archive_trash', () => {
  it('deletes nothing while archive_trash_purge_enabled is off (the default)', async () => {
    const old = await archive(400);
    expect(await gqlOk(system.url, admin, '{ systemConfig { archiveTrashPurgeEnabled archiveTrashRetentionDays } }')).toEqual({
      systemConfig: { archiveTrashPurgeEnabled: false, archiveTrashRetentionDays: 30 },
    });
    expect(await purge()).toMatchObject({ enabled: false, purged: 0, filesDeleted: 0 });
    expect(await exists(old.id)).toBe(true);
    expect(await system.apiServices.storage.exists(old.key)).toBe(true);
  });

  it('when enabled, removes archives trashed before now − retention: files, then rows; keeps the rest', async () => {
    const old = await archive(31);
    const recent = await archive(29);
    const kept = await archive(null);
    await gqlOk(
      system.url,
      admin,
      'mutation { updateSystemConfig(input: { archiveTrashPurgeEnabled: true }) { archiveTrashPurgeEnabled } }',
    );
    const output = await purge();
    expect(output).toMatchObject({ enabled: true, retentionDays: 30 });
    expect(output.purged).toBeGreaterThanOrEqual(1);
    expect(await exists(old.id)).toBe(false);
    expect(await system.apiServices.storage.exists(old.key)).toBe(false);
    expect(await exists(recent.id)).toBe(true);
    expect(await exists(kept.id)).toBe(true);
    expect(await system.apiServices.storage.exists(recent.key)).toBe(true);
  });

  it('follows archive_trash_retention_days', async () => {
    const tenDays = await archive(10);
    await gqlOk(
      system.url,
      admin,
      'mutation { updateSystemConfig(input: { archiveTrashRetentionDays: 7 }) { archiveTrashRetentionDays } }',
    );
    const remaining = await env.one<{ n: number }>("SELECT count(*)::int AS n FROM archive WHERE deleted_at < now() - interval '7 days'");
    expect(remaining.n).toBe(2); // this one and the 29-day-old one kept by the 30-day rule above
    expect(await purge()).toMatchObject({ enabled: true, retentionDays: 7, purged: 2, filesDeleted: 2 });
    expect(await exists(tenDays.id)).toBe(false);
  });

  it('rejects a negative retention with BAD_USER_INPUT and keeps the setting', async () => {
    const response = await gql(
      system.url,
      admin,
      'mutation { updateSystemConfig(input: { archiveTrashRetentionDays: -1 }) { archiveTrashRetentionDays } }',
    );
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await gqlOk(system.url, admin, '{ systemConfig { archiveTrashRetentionDays } }')).toEqual({
      systemConfig: { archiveTrashRetentionDays: 7 },
    });
  });

  it('is listed as a maintenance type with its daily schedule', async () => {
    const { jobTypes } = await gqlOk<{ jobTypes: any[] }>(
      system.url,
      admin,
      '{ jobTypes { name concurrency globalConcurrency schedules { id cron timezone } } }',
    );
    expect(jobTypes.find((t) => t.name === 'purge_archive_trash')).toEqual({
      name: 'purge_archive_trash',
      concurrency: 1,
      globalConcurrency: 1,
      schedules: [{ id: 'purge-archive-trash-daily', cron: '0 4 * * *', timezone: 'UTC' }],
    });
  });
});
