import { Migration } from '@mikro-orm/migrations';

export class Migration20261129012335 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "schedule_setting" ("id" varchar(255) not null, "cron" varchar(255) null, "timezone" varchar(64) null, "enabled" boolean null, "overlap" varchar(16) null, "updated_at" timestamptz not null default now(), constraint "schedule_setting_pkey" primary key ("id"));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "schedule_setting" cascade;`);
  }
}
