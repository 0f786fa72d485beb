import { Migration } from '@mikro-orm/migrations';

export class Migration20261124041213 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "account" ("id" uuid not null, "owner_id" varchar(255) not null, "name" varchar(255) not null, "email" varchar(320) null, "imap_host" varchar(255) null, "imap_port" int null, "imap_secure" boolean not null default true, "imap_user" varchar(320) null, "imap_password_sealed" text null, "created_at" timestamptz not null, constraint "account_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "account_owner_idx" on "account" ("owner_id");`);

    this.addSql(
      `create table "archive" ("id" uuid not null, "account_id" uuid not null, "owner_id" varchar(255) not null, "message_id" uuid not null, "size" int not null, "content_hash" varchar(64) not null, "files" jsonb not null, "encrypted" boolean not null default false, "created_at" timestamptz not null, "deleted_at" timestamptz null, constraint "archive_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "archive_account_created_idx" on "archive" ("account_id", "created_at", "id");`);
    this.addSql(`create index "archive_deleted_idx" on "archive" ("deleted_at");`);
    this.addSql(`alter table "archive" add constraint "archive_message_unique" unique ("message_id");`);

    this.addSql(
      `create table "finding" ("id" uuid not null, "account_id" uuid not null, "owner_id" varchar(255) not null, "message_id" uuid not null, "scan" varchar(16) not null, "kind" varchar(32) not null, "subtype" varchar(64) null, "detail" text not null, "host" varchar(255) null, "source" varchar(255) not null default '', "sender" varchar(320) null, "created_at" timestamptz not null, constraint "finding_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "finding_account_scan_kind_idx" on "finding" ("account_id", "scan", "kind");`);
    this.addSql(`alter table "finding" add constraint "finding_unique" unique ("message_id", "scan", "kind", "detail", "source");`);

    this.addSql(
      `create table "imap_sync_state" ("id" uuid not null, "account_id" uuid not null, "mailbox" varchar(512) not null, "uid_validity" varchar(32) null, "last_uid" int not null default 0, "updated_at" timestamptz not null, constraint "imap_sync_state_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "imap_sync_state" add constraint "imap_sync_state_account_mailbox_unique" unique ("account_id", "mailbox");`);

    this.addSql(
      `create table "job" ("id" uuid not null, "type" varchar(64) not null, "status" varchar(16) not null, "progress" real not null default 0, "processed" int null, "total" int null, "message" text null, "attempts" int not null default 0, "max_attempts" int not null, "priority" int null, "payload" jsonb not null, "result" jsonb null, "error" text null, "trigger" varchar(16) not null, "idempotency_key" varchar(255) null, "owner_id" varchar(255) not null, "account_id" uuid null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, "run_at" timestamptz null, "cancel_requested_at" timestamptz null, "version" int not null default 0, constraint "job_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "job_created_idx" on "job" ("created_at", "id");`);
    this.addSql(`create index "job_owner_created_idx" on "job" ("owner_id", "created_at", "id");`);
    this.addSql(`create index "job_owner_type_created_idx" on "job" ("owner_id", "type", "created_at", "id");`);
    this.addSql(`create index "job_owner_status_created_idx" on "job" ("owner_id", "status", "created_at", "id");`);
    this.addSql(`create index "job_type_created_idx" on "job" ("type", "created_at", "id");`);
    this.addSql(`create index "job_status_created_idx" on "job" ("status", "created_at", "id");`);
    this.addSql(`create index "job_account_created_idx" on "job" ("account_id", "created_at", "id");`);
    this.addSql(`alter table "job" add constraint "job_owner_idempotency_key_unique" unique ("owner_id", "idempotency_key");`);

    this.addSql(
      `create table "message" ("id" uuid not null, "account_id" uuid not null, "owner_id" varchar(255) not null, "dedup_key" varchar(1024) not null, "message_id" text null, "content_hash" varchar(64) not null, "subject" text null, "from_address" varchar(320) null, "from_name" text null, "to_addresses" text[] not null default '{}', "cc_addresses" text[] not null default '{}', "date" timestamptz null, "size" int not null, "headers" jsonb not null, "text_body" text null, "html_body" text null, "attachment_count" int not null default 0, "labels" text[] not null default '{}', "is_read" boolean not null default false, "is_starred" boolean not null default false, "blob_key" varchar(512) not null, "deleted_at" timestamptz null, "archived_at" timestamptz null, "created_at" timestamptz not null, constraint "message_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "message_account_created_idx" on "message" ("account_id", "created_at", "id");`);
    this.addSql(`create index "message_account_date_idx" on "message" ("account_id", "date");`);
    this.addSql(`alter table "message" add constraint "message_account_dedup_unique" unique ("account_id", "dedup_key");`);

    this.addSql(
      `create table "message_attachment" ("id" uuid not null, "message_id" uuid not null, "filename" text null, "content_type" varchar(255) not null, "size" int not null, "content_hash" varchar(64) not null, "blob_key" varchar(512) not null, constraint "message_attachment_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "message_attachment_message_idx" on "message_attachment" ("message_id");`);

    this.addSql(
      `create table "newsletter" ("id" uuid not null, "account_id" uuid not null, "owner_id" varchar(255) not null, "sender" varchar(320) not null, "message_count" int not null, "last_seen" timestamptz null, "unsubscribe_urls" jsonb not null, "mailtos" jsonb not null, "one_click" boolean not null default false, "one_click_url" text null, "updated_at" timestamptz not null, constraint "newsletter_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "newsletter" add constraint "newsletter_account_sender_unique" unique ("account_id", "sender");`);

    this.addSql(
      `create table "retention_policy" ("id" uuid not null, "owner_id" varchar(255) not null, "account_id" uuid null, "name" varchar(255) not null, "older_than_days" int not null, "action" varchar(16) not null, "enabled" boolean not null default true, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "retention_policy_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "retention_policy_owner_idx" on "retention_policy" ("owner_id");`);

    this.addSql(
      `create table "rule" ("id" uuid not null, "account_id" uuid not null, "owner_id" varchar(255) not null, "name" varchar(255) not null, "conditions" jsonb not null, "actions" jsonb not null, "schedule" varchar(255) null, "enabled" boolean not null default true, "last_run_at" timestamptz null, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "rule_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "rule_account_idx" on "rule" ("account_id");`);
    this.addSql(`create index "rule_owner_idx" on "rule" ("owner_id");`);

    this.addSql(
      `create table "system_config" ("key" varchar(128) not null, "value" jsonb not null, "updated_at" timestamptz not null, constraint "system_config_pkey" primary key ("key"));`,
    );
  }
}
