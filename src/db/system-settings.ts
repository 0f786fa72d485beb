import type { EntityManager } from '@mikro-orm/postgresql';
import { SystemConfigEntry } from './entities/system-config.entity.js';

/** Run-time settings stored in `system_config`, with the default used when a key is absent. */
export interface SystemSettings {
  /** Whether `purge_archive_trash` deletes anything. (Default: false) */
  archiveTrashPurgeEnabled: boolean;
  /** Trashed archives older than this many days are purged. (Default: 30) */
  archiveTrashRetentionDays: number;
}

export const DEFAULT_SETTINGS: SystemSettings = { archiveTrashPurgeEnabled: false, archiveTrashRetentionDays: 30 };

const KEYS: Record<keyof SystemSettings, string> = {
  archiveTrashPurgeEnabled: 'archive_trash_purge_enabled',
  archiveTrashRetentionDays: 'archive_trash_retention_days',
};

export async function readSettings(em: EntityManager): Promise<SystemSettings> {
  const entries = await em.find(SystemConfigEntry, { key: { $in: Object.values(KEYS) } });
  const byKey = new Map(entries.map((entry) => [entry.key, entry.value]));
  const enabled = byKey.get(KEYS.archiveTrashPurgeEnabled);
  const days = byKey.get(KEYS.archiveTrashRetentionDays);
  return {
    archiveTrashPurgeEnabled: typeof enabled === 'boolean' ? enabled : DEFAULT_SETTINGS.archiveTrashPurgeEnabled,
    archiveTrashRetentionDays:
      typeof days === 'number' && Number.isInteger(days) && days >= 0 ? days : DEFAULT_SETTINGS.archiveTrashRetentionDays,
  };
}

/** Writes the given settings (others untouched) and returns the full set. */
export async function writeSettings(em: EntityManager, changes: Partial<SystemSettings>): Promise<SystemSettings> {
  const now = new Date();
  for (const [field, value] of Object.entries(changes) as [keyof SystemSettings, unknown][]) {
    if (value === undefined || value === null) continue;
    await em.upsert(SystemConfigEntry, { key: KEYS[field], value, updatedAt: now });
  }
  await em.flush();
  return readSettings(em);
}
