import { OnlineMigration } from '../src/db/online-migration.js';

// Online (see OnlineMigration): the job table may hold millions of rows when this runs.
export class Migration20261128204606 extends OnlineMigration {
  override async up(): Promise<void> {
    await this.createIndexConcurrently('job_updated_idx', '"job" ("updated_at", "id")');
    await this.createIndexConcurrently('job_owner_updated_idx', '"job" ("owner_id", "updated_at", "id")');
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "job_updated_idx";`);
    this.addSql(`drop index "job_owner_updated_idx";`);
  }
}
