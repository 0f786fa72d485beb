import { Migration } from '@mikro-orm/migrations';

export class Migration20261124053713 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create index "job_owner_account_created_idx" on "job" ("owner_id", "account_id", "created_at", "id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "job_owner_account_created_idx";`);
  }
}
