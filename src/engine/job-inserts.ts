import type { EntityManager } from '@mikro-orm/postgresql';
import type { JobRecord } from '../db/entities/job.entity.js';
import { GroupCommit } from '../db/group-commit.js';
import { insertJob, insertJobs, type JobInsert, type NewJob } from './job-store.js';

/**
 * The API's job inserts, group-committed: the enqueues of concurrent requests go to PostgreSQL as
 * one statement (see GroupCommit), where each would otherwise pay a round trip and a statement of
 * its own. A request alone is written at once. Jobs with the same owner and idempotency key never
 * share a statement; a job the batch refused is inserted alone, which says why.
 */
export class JobInserts {
  private readonly batches: GroupCommit<JobInsert, JobRecord | null>;

  constructor(em: EntityManager) {
    // Plain statements on the shared pool: nothing is loaded into an identity map.
    this.batches = new GroupCommit(
      async (inserts) => {
        const inserted = await insertJobs(em, inserts);
        return inserts.map(({ job }) => inserted.get(job.id) ?? null);
      },
      ({ job }) => `${job.ownerId}\n${job.idempotencyKey ?? job.id}`,
    );
  }

  /** `insertJob`'s answer; inside a transaction, it is `insertJob` itself, on that transaction. */
  async insert(em: EntityManager, job: NewJob, owner: { isAdmin: boolean }): Promise<{ job: JobRecord; created: boolean }> {
    if (em.isInTransaction()) return insertJob(em, job, owner);
    const inserted = await this.batches.submit({ job, isAdmin: owner.isAdmin });
    return inserted ? { job: inserted, created: true } : insertJob(em, job, owner);
  }
}
