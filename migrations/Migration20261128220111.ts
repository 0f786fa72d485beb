import { OnlineMigration } from '../src/db/online-migration.js';

// Online (see OnlineMigration): the job table may hold millions of rows when this runs. Its two
// columns get their volatile default without the table rewrite (under an exclusive lock) that
// `add column … not null default pg_current_xact_id()` would make.
export class Migration20261128220111 extends OnlineMigration {
  override async up(): Promise<void> {
    await this.execute(
      `create table if not exists "job_status_change" ("id" bigserial primary key, "job_id" uuid not null, "status_before" varchar(16) not null, "change_xid" xid8 not null default pg_current_xact_id(), "at" timestamptz not null default now());`,
    );
    await this.execute(`create index if not exists "job_status_change_job_idx" on "job_status_change" ("job_id", "change_xid", "id");`);
    await this.execute(`create index if not exists "job_status_change_at_idx" on "job_status_change" ("at");`);

    await this.execute(
      `alter table "job" add column if not exists "created_xid" xid8 null, add column if not exists "change_xid" xid8 null;`,
    );
    await this.execute(
      `alter table "job" alter column "created_xid" set default pg_current_xact_id(), alter column "change_xid" set default pg_current_xact_id();`,
    );
    // Rows written before: any transaction id from before the change stream began will do. In
    // batches by primary key, so each holds its rows' locks only briefly.
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const [walked] = await this.execute(
        `with batch as (select "id" from "job" where "id" > ? order by "id" limit 5000),
              filled as (update "job" set "created_xid" = coalesce("created_xid", pg_current_xact_id()), "change_xid" = coalesce("change_xid", pg_current_xact_id())
                           from batch where "job"."id" = batch."id" and ("created_xid" is null or "change_xid" is null))
         select (select "id" from batch order by "id" desc limit 1) as "last"`,
        [after],
      );
      if (!walked?.last) break;
      after = walked.last;
    }
    // NOT NULL without a scan under an exclusive lock: a validated check constraint proves it first.
    await this.execute(`alter table "job" drop constraint if exists "job_xids_set";`);
    await this.execute(
      `alter table "job" add constraint "job_xids_set" check ("created_xid" is not null and "change_xid" is not null) not valid;`,
    );
    await this.execute(`alter table "job" validate constraint "job_xids_set";`);
    await this.execute(`alter table "job" alter column "created_xid" set not null, alter column "change_xid" set not null;`);
    await this.execute(`alter table "job" drop constraint "job_xids_set";`);
    await this.createIndexConcurrently('job_change_xid_idx', '"job" ("change_xid", "id")');
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "job_status_change" cascade;`);

    this.addSql(`drop index "job_change_xid_idx";`);
    this.addSql(`alter table "job" drop column "created_xid", drop column "change_xid";`);
  }
}
