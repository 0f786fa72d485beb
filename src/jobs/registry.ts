import type { AnyJobDeclaration } from './define-job.js';
import { bulkOperationJob } from './bulk-operation.job.js';
import { importMboxJob } from './import-mbox.job.js';
import { purgeArchiveTrashJob } from './purge-archive-trash.job.js';

/** The job catalogue. Adding a type: write `src/jobs/<name>.job.ts` and list it here. */
export const jobCatalogue: readonly AnyJobDeclaration[] = [importMboxJob, bulkOperationJob, purgeArchiveTrashJob];

const byName = new Map(jobCatalogue.map((declaration) => [declaration.name, declaration]));

export function findJobType(name: string): AnyJobDeclaration | undefined {
  return byName.get(name);
}
