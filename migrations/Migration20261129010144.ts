import { OnlineMigration } from '../src/db/online-migration.js';

// Online (see OnlineMigration): the job table may hold millions of rows when this runs.
export class Migration20261129010144 extends OnlineMigration {
  override async up(): Promise<void> {
    // Added by hand (MikroORM does not generate extensions): btree_gin lets job_owner_tags_idx hold
    // owner_id beside tags. A trusted extension, so the database owner may create it.
    await this.execute(`create extension if not exists btree_gin;`);
    await this.execute(
      `create table if not exists "job_attempt" ("id" bigserial primary key, "job_id" uuid not null, "run" int not null, "number" int not null, "started_at" timestamptz not null, "finished_at" timestamptz null, "outcome" varchar(16) null, "error" text null, "worker" varchar(255) not null);`,
    );
    await this.execute(`create index if not exists "job_attempt_job_idx" on "job_attempt" ("job_id", "id");`);

    await this.execute(
      `create table if not exists "job_log" ("id" bigserial primary key, "job_id" uuid not null, "run" int not null, "attempt" int not null, "at" timestamptz not null, "level" varchar(8) not null, "message" text not null, "fields" jsonb null);`,
    );
    await this.execute(`create index if not exists "job_log_job_idx" on "job_log" ("job_id", "id");`);

    // Constant defaults: PostgreSQL records them without rewriting the table.
    await this.execute(
      `alter table "job" add column if not exists "run" int not null default 1, add column if not exists "tags" text[] not null default '{}', add column if not exists "metadata" jsonb not null default '{}', add column if not exists "log_lines_dropped" int not null default 0;`,
    );
    await this.createIndexConcurrently('job_owner_tags_idx', '"job" using gin ("owner_id", "tags")');
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "job_attempt" cascade;`);

    this.addSql(`drop table if exists "job_log" cascade;`);

    this.addSql(`drop index "job_owner_tags_idx";`);
    this.addSql(`alter table "job" drop column "run", drop column "tags", drop column "metadata", drop column "log_lines_dropped";`);
  }
}
