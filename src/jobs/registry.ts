import type { AnyJobDeclaration } from '../engine/define-job.js';
import { applyRetentionJob } from './apply-retention.job.js';
import { archiveMailsJob } from './archive-mails.job.js';
import { bulkJobActionJob } from './bulk-job-action.job.js';
import { bulkOperationJob } from './bulk-operation.job.js';
import { encryptArchivesJob } from './encrypt-archives.job.js';
import { importImapJob } from './import-imap.job.js';
import { importMboxJob } from './import-mbox.job.js';
import { purgeArchiveTrashJob } from './purge-archive-trash.job.js';
import { runRuleJob } from './run-rule.job.js';
import { scanPiiJob } from './scan-pii.job.js';
import { scanTrackingJob } from './scan-tracking.job.js';
import { scanUnsubscribeJob } from './scan-unsubscribe.job.js';

/** The job catalogue. Adding a type: write `src/jobs/<name>.job.ts` and list it here. */
export const jobCatalogue: readonly AnyJobDeclaration[] = [
  importMboxJob,
  importImapJob,
  bulkOperationJob,
  runRuleJob,
  archiveMailsJob,
  encryptArchivesJob,
  applyRetentionJob,
  purgeArchiveTrashJob,
  scanUnsubscribeJob,
  scanTrackingJob,
  scanPiiJob,
  bulkJobActionJob,
];

const byName = new Map(jobCatalogue.map((declaration) => [declaration.name, declaration]));

export function findJobType(name: string): AnyJobDeclaration | undefined {
  return byName.get(name);
}
