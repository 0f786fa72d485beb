import { OnlineMigration } from '../src/db/online-migration.js';

// Online (see OnlineMigration): an archive's message tables may hold millions of rows when this runs.
export class Migration20261129194857 extends OnlineMigration {
  override async up(): Promise<void> {
    await this.execute(`alter table "message" add column if not exists "blob_offset" int null;`);
    await this.createIndexConcurrently('message_blob_key_idx', '"message" ("blob_key")');

    await this.execute(`alter table "message_attachment" add column if not exists "blob_offset" int null;`);
    await this.createIndexConcurrently('message_attachment_blob_key_idx', '"message_attachment" ("blob_key")');
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "message_blob_key_idx";`);
    this.addSql(`alter table "message" drop column "blob_offset";`);

    this.addSql(`drop index "message_attachment_blob_key_idx";`);
    this.addSql(`alter table "message_attachment" drop column "blob_offset";`);
  }
}
