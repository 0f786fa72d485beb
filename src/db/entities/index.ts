import { AccountSchema } from './account.entity.js';
import { ArchiveSchema } from './archive.entity.js';
import { JobAttemptSchema, JobLogLineSchema, JobSchema, JobStatusChangeSchema } from './job.entity.js';
import { MessageAttachmentSchema, MessageSchema } from './message.entity.js';
import { SystemConfigSchema } from './system-config.entity.js';
import { FindingSchema, ImapSyncStateSchema, NewsletterSchema } from './finding.entity.js';
import { RetentionPolicySchema } from './retention-policy.entity.js';
import { RuleSchema } from './rule.entity.js';
import { JobTypeStateSchema } from './job-type-state.entity.js';
import { ScheduleSettingSchema } from './schedule-setting.entity.js';

export * from './account.entity.js';
export * from './archive.entity.js';
export * from './job.entity.js';
export * from './message.entity.js';
export * from './system-config.entity.js';
export * from './finding.entity.js';
export * from './retention-policy.entity.js';
export * from './rule.entity.js';
export * from './job-type-state.entity.js';
export * from './schedule-setting.entity.js';

/** Every entity the ORM knows; migrations are generated from this list. */
export const entities = [
  JobSchema,
  JobStatusChangeSchema,
  JobAttemptSchema,
  JobLogLineSchema,
  JobTypeStateSchema,
  ScheduleSettingSchema,
  SystemConfigSchema,
  AccountSchema,
  MessageSchema,
  MessageAttachmentSchema,
  ArchiveSchema,
  RuleSchema,
  RetentionPolicySchema,
  FindingSchema,
  NewsletterSchema,
  ImapSyncStateSchema,
];
