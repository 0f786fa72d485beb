import { Migration } from '@mikro-orm/migrations';

export class Migration20261128204643 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "job" add column "previous_status" varchar(16) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "job" drop column "previous_status";`);
  }
}
