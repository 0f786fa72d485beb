import { z } from 'zod';
import type { ArchiveFile } from '../db/entities/archive.entity.js';
import { pgArray } from '../db/sql.js';
import { readSettings } from '../db/system-settings.js';
import { defineJob, MAINTENANCE_OPTIONS } from '../engine/define-job.js';

const BATCH_SIZE = 100;

export const purgeArchiveTrashJob = defineJob({
  name: 'purge_archive_trash',
  description:
    'Deletes archives trashed longer ago than `archive_trash_retention_days` (default 30), files first, then rows, when `archive_trash_purge_enabled` is on. Runs daily at 04:00.',
  // It deletes every owner's trashed archives, so only an operator may start it by hand.
  graphql: { mutation: 'purgeArchiveTrash', typeName: 'PurgeArchiveTrashJob', adminOnly: true },
  unit: 'archives',
  args: z.object({}),
  input: z.object({}).meta({ id: 'PurgeArchiveTrashInput' }),
  output: z
    .object({
      enabled: z.boolean().describe('Whether purging was enabled when the job ran; when not, nothing was deleted.'),
      retentionDays: z.number().int(),
      cutoff: z.string().describe('Archives trashed before this instant were purged (ISO 8601).'),
      purged: z.number().int(),
      filesDeleted: z.number().int(),
    })
    .meta({ id: 'PurgeArchiveTrashOutput' }),
  options: MAINTENANCE_OPTIONS,
  schedules: [{ id: 'purge-archive-trash-daily', cron: '0 4 * * *', input: {}, overlap: 'SKIP_IF_RUNNING' }],
  async prepare() {
    return { input: {}, accountId: null };
  },
  async handler(_input, ctx) {
    const settings = await readSettings(ctx.em);
    const cutoff = new Date(Date.now() - settings.archiveTrashRetentionDays * 24 * 3600 * 1000);
    const summary = {
      enabled: settings.archiveTrashPurgeEnabled,
      retentionDays: settings.archiveTrashRetentionDays,
      cutoff: cutoff.toISOString(),
      purged: 0,
      filesDeleted: 0,
    };
    if (!settings.archiveTrashPurgeEnabled) {
      ctx.progress({ processed: 0, total: 0, message: 'purge is disabled (archive_trash_purge_enabled)' });
      ctx.log.info('purge is disabled (archive_trash_purge_enabled); nothing deleted', { enabled: false });
      return summary;
    }
    const connection = ctx.em.getConnection();
    const [{ count }] = (await connection.execute(
      'SELECT count(*)::int AS count FROM archive WHERE deleted_at IS NOT NULL AND deleted_at < ?',
      [cutoff],
      'all',
    )) as [{ count: number }];
    ctx.progress({ processed: 0, total: count, message: 'purging' });
    ctx.log.info(`purging ${count} archives trashed before ${summary.cutoff}`, {
      archives: count,
      cutoff: summary.cutoff,
      retentionDays: summary.retentionDays,
    });

    for (;;) {
      ctx.checkpoint();
      const batch: { id: string; files: ArchiveFile[] }[] = await connection.execute(
        'SELECT id, files FROM archive WHERE deleted_at IS NOT NULL AND deleted_at < ? ORDER BY id LIMIT ?',
        [cutoff, BATCH_SIZE],
        'all',
      );
      if (batch.length === 0) break;
      // Files first: a crash between the two leaves a row whose files are gone, which the next run
      // deletes again; the reverse would leave files nothing points to.
      for (const archive of batch) {
        await Promise.all(archive.files.map((file) => ctx.storage.delete(file.key)));
        summary.filesDeleted += archive.files.length;
      }
      await connection.execute('DELETE FROM archive WHERE id = ANY(?::uuid[])', [pgArray(batch.map((archive) => archive.id))], 'run');
      summary.purged += batch.length;
      ctx.progress({ processed: summary.purged, message: 'purging' });
    }
    ctx.log.info(`purged ${summary.purged} archives; ${summary.filesDeleted} files removed`, {
      purged: summary.purged,
      filesDeleted: summary.filesDeleted,
    });
    return summary;
  },
});
