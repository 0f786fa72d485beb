import { EntitySchema } from '@mikro-orm/core';

/** What an operator changed about a job type at run time; a type without a row runs as declared. */
export class JobTypeState {
  /** The catalogue name, e.g. `import_mbox`. */
  type!: string;
  /** Set while the type is paused (`pauseJobType`): its queued jobs wait, running ones finish. */
  pausedAt: Date | null = null;
  /** Who paused it (a token's subject). */
  pausedBy: string | null = null;
  /** The last pause or resume: the reconciler leaves a change this fresh alone (it may be mid-way to Redis). */
  changedAt!: Date;
}

export const JobTypeStateSchema = new EntitySchema<JobTypeState>({
  class: JobTypeState,
  tableName: 'job_type_state',
  properties: {
    type: { type: 'string', length: 64, primary: true },
    pausedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true },
    pausedBy: { type: 'string', length: 255, nullable: true },
    changedAt: { type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' },
  },
});
