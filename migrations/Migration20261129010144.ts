import { Migration } from '@mikro-orm/migrations';

export class Migration20261129010144 extends Migration {
  override async up(): Promise<void> {
    // Added by hand (MikroORM does not generate extensions): btree_gin lets job_owner_tags_idx hold
    // owner_id beside tags. A trusted extension, so the database owner may create it.
    this.addSql(`create extension if not exists btree_gin;`);
    this.addSql(
      `create table "job_attempt" ("id" bigserial primary key, "job_id" uuid not null, "run" int not null, "number" int not null, "started_at" timestamptz not null, "finished_at" timestamptz null, "outcome" varchar(16) null, "error" text null, "worker" varchar(255) not null);`,
    );
    this.addSql(`create index "job_attempt_job_idx" on "job_attempt" ("job_id", "id");`);

    this.addSql(
      `create table "job_log" ("id" bigserial primary key, "job_id" uuid not null, "run" int not null, "attempt" int not null, "at" timestamptz not null, "level" varchar(8) not null, "message" text not null, "fields" jsonb null);`,
    );
    this.addSql(`create index "job_log_job_idx" on "job_log" ("job_id", "id");`);

    this.addSql(
      `alter table "job" add column "run" int not null default 1, add column "tags" text[] not null default '{}', add column "metadata" jsonb not null default '{}', add column "log_lines_dropped" int not null default 0;`,
    );
    this.addSql(`create index "job_owner_tags_idx" on "job" using gin ("owner_id", "tags");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "job_attempt" cascade;`);

    this.addSql(`drop table if exists "job_log" cascade;`);

    this.addSql(`drop index "job_owner_tags_idx";`);
    this.addSql(`alter table "job" drop column "run", drop column "tags", drop column "metadata", drop column "log_lines_dropped";`);
  }
}
