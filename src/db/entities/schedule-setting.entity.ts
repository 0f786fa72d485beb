import { EntitySchema } from '@mikro-orm/core';

export const OVERLAP_POLICIES = ['SKIP_IF_RUNNING', 'ALLOW'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/**
 * What an operator changed about a system schedule at run time (`updateSchedule`); each null
 * field keeps the declared value (or its SCHEDULE_OVERRIDES deploy-time override).
 */
export class ScheduleSetting {
  /** The schedule's id, e.g. `apply-retention-daily`. */
  id!: string;
  cron: string | null = null;
  timezone: string | null = null;
  enabled: boolean | null = null;
  overlap: OverlapPolicy | null = null;
  updatedAt!: Date;
}

export const ScheduleSettingSchema = new EntitySchema<ScheduleSetting>({
  class: ScheduleSetting,
  tableName: 'schedule_setting',
  properties: {
    id: { type: 'string', length: 255, primary: true },
    cron: { type: 'string', length: 255, nullable: true },
    timezone: { type: 'string', length: 64, nullable: true },
    enabled: { type: 'boolean', nullable: true },
    overlap: { type: 'string', length: 16, nullable: true },
    updatedAt: { type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' },
  },
});
