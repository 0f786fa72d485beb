import { Migration } from '@mikro-orm/migrations';

export class Migration20261129012044 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "job_type_state" ("type" varchar(64) not null, "paused_at" timestamptz null, "paused_by" varchar(255) null, "changed_at" timestamptz not null default now(), constraint "job_type_state_pkey" primary key ("type"));`,
    );

    this.addSql(`create index "job_attempt_open_idx" on "job_attempt" ("job_id") where "finished_at" is null;`);

    this.addSql(`alter table "job" add column "expires_at" timestamptz null, add column "idempotency_expires_at" timestamptz null;`);
    this.addSql(
      `create index "job_expires_idx" on "job" ("expires_at") where "expires_at" is not null and "started_at" is null and "status" in ('PENDING', 'DELAYED');`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "job_type_state" cascade;`);

    this.addSql(`drop index "job_expires_idx";`);
    this.addSql(`alter table "job" drop column "expires_at", drop column "idempotency_expires_at";`);

    this.addSql(`drop index "job_attempt_open_idx";`);
  }
}
