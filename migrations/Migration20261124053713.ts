import { OnlineMigration } from '../src/db/online-migration.js';

// Online (see OnlineMigration): the job table may hold millions of rows when this runs.
export class Migration20261124053713 extends OnlineMigration {
  override async up(): Promise<void> {
    await this.createIndexConcurrently('job_owner_account_created_idx', '"job" ("owner_id", "account_id", "created_at", "id")');
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "job_owner_account_created_idx";`);
  }
}
