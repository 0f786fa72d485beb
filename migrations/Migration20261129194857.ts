import { Migration } from '@mikro-orm/migrations';

export class Migration20261129194857 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "message" add column "blob_offset" int null;`);
    this.addSql(`create index "message_blob_key_idx" on "message" ("blob_key");`);

    this.addSql(`alter table "message_attachment" add column "blob_offset" int null;`);
    this.addSql(`create index "message_attachment_blob_key_idx" on "message_attachment" ("blob_key");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "message_blob_key_idx";`);
    this.addSql(`alter table "message" drop column "blob_offset";`);

    this.addSql(`drop index "message_attachment_blob_key_idx";`);
    this.addSql(`alter table "message_attachment" drop column "blob_offset";`);
  }
}
