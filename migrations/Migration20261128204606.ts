import { Migration } from '@mikro-orm/migrations';

export class Migration20261128204606 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create index "job_updated_idx" on "job" ("updated_at", "id");`);
    this.addSql(`create index "job_owner_updated_idx" on "job" ("owner_id", "updated_at", "id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "job_updated_idx";`);
    this.addSql(`drop index "job_owner_updated_idx";`);
  }
}
