import { Migration } from '@mikro-orm/migrations';

export class Migration20261128220111 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "job_status_change" ("id" bigserial primary key, "job_id" uuid not null, "status_before" varchar(16) not null, "change_xid" xid8 not null default pg_current_xact_id(), "at" timestamptz not null default now());`,
    );
    this.addSql(`create index "job_status_change_job_idx" on "job_status_change" ("job_id", "change_xid", "id");`);
    this.addSql(`create index "job_status_change_at_idx" on "job_status_change" ("at");`);

    this.addSql(
      `alter table "job" add column "created_xid" xid8 not null default pg_current_xact_id(), add column "change_xid" xid8 not null default pg_current_xact_id();`,
    );
    this.addSql(`create index "job_change_xid_idx" on "job" ("change_xid", "id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "job_status_change" cascade;`);

    this.addSql(`drop index "job_change_xid_idx";`);
    this.addSql(`alter table "job" drop column "created_xid", drop column "change_xid";`);
  }
}
