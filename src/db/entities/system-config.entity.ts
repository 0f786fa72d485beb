import { EntitySchema } from '@mikro-orm/core';

/** A key/value setting operators change at run time (e.g. `archive_trash_purge_enabled`). */
export class SystemConfigEntry {
  key!: string;
  value!: unknown;
  updatedAt!: Date;
}

export const SystemConfigSchema = new EntitySchema<SystemConfigEntry>({
  class: SystemConfigEntry,
  tableName: 'system_config',
  properties: {
    key: { type: 'string', length: 128, primary: true },
    value: { type: 'json' },
    updatedAt: { type: 'datetime', columnType: 'timestamptz' },
  },
});
