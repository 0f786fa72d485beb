import { OnlineMigration } from '../src/db/online-migration.js';

// Online (see OnlineMigration): the job and job_attempt tables may hold millions of rows when this runs.
export class Migration20261129012044 extends OnlineMigration {
  override async up(): Promise<void> {
    await this.execute(
      `create table if not exists "job_type_state" ("type" varchar(64) not null, "paused_at" timestamptz null, "paused_by" varchar(255) null, "changed_at" timestamptz not null default now(), constraint "job_type_state_pkey" primary key ("type"));`,
    );

    await this.createIndexConcurrently('job_attempt_open_idx', '"job_attempt" ("job_id") where "finished_at" is null');

    await this.execute(
      `alter table "job" add column if not exists "expires_at" timestamptz null, add column if not exists "idempotency_expires_at" timestamptz null;`,
    );
    await this.createIndexConcurrently(
      'job_expires_idx',
      `"job" ("expires_at") where "expires_at" is not null and "started_at" is null and "status" in ('PENDING', 'DELAYED')`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "job_type_state" cascade;`);

    this.addSql(`drop index "job_expires_idx";`);
    this.addSql(`alter table "job" drop column "expires_at", drop column "idempotency_expires_at";`);

    this.addSql(`drop index "job_attempt_open_idx";`);
  }
}
