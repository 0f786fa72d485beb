import { readSettings, writeSettings, type SystemSettings } from '../../db/system-settings.js';
import { builder } from '../builder.js';
import { graphqlError } from '../errors.js';

const SystemConfigRef = builder.objectRef<SystemSettings>('SystemConfig').implement({
  description: 'Settings stored in `system_config`, read by jobs when they run.',
  fields: (t) => ({
    archiveTrashPurgeEnabled: t.exposeBoolean('archiveTrashPurgeEnabled', {
      description: '`archive_trash_purge_enabled`: whether purge_archive_trash deletes anything. Default false.',
    }),
    archiveTrashRetentionDays: t.exposeInt('archiveTrashRetentionDays', {
      description: '`archive_trash_retention_days`: trashed archives older than this are purged. Default 30.',
    }),
  }),
});

const SystemConfigInputRef = builder.inputType('SystemConfigInput', {
  fields: (t) => ({
    archiveTrashPurgeEnabled: t.boolean({ required: false }),
    archiveTrashRetentionDays: t.int({ required: false }),
  }),
});

builder.queryField('systemConfig', (t) =>
  t.field({
    type: SystemConfigRef,
    description: 'Admins only.',
    authScopes: { admin: true },
    resolve: (_root, _args, ctx) => readSettings(ctx.em),
  }),
);

builder.mutationField('updateSystemConfig', (t) =>
  t.field({
    type: SystemConfigRef,
    description: 'Admins only.',
    authScopes: { admin: true },
    args: { input: t.arg({ type: SystemConfigInputRef, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const days = input.archiveTrashRetentionDays;
      if (days != null && (days < 0 || days > 36_500))
        throw graphqlError('BAD_USER_INPUT', 'archiveTrashRetentionDays must be between 0 and 36500');
      const change = {
        archiveTrashPurgeEnabled: input.archiveTrashPurgeEnabled ?? undefined,
        archiveTrashRetentionDays: days ?? undefined,
      };
      const settings = await writeSettings(ctx.em, change);
      // As a pause or a schedule change is: who changed what the system deletes, and when.
      ctx.services.logger.info({ by: ctx.viewer.id, change }, 'system config changed');
      return settings;
    },
  }),
);
