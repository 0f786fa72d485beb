import { Migration } from '@mikro-orm/migrations';

/**
 * A migration that changes tables which may already be large when an existing installation
 * upgrades, without stopping the application's writes for the length of the work: it builds
 * indexes CONCURRENTLY (which cannot run inside a transaction, so this migration runs outside
 * one, statement by statement) and never rewrites a table. Every step may run again: a run cut
 * short is finished by the next `npm run migrate`.
 */
export abstract class OnlineMigration extends Migration {
  override isTransactional(): boolean {
    return false;
  }

  /**
   * Builds an index while the table takes writes. An index an interrupted build left invalid is
   * dropped and built again; a valid one is kept. `definition` is what follows ON, e.g.
   * `"job" ("updated_at", "id")`.
   */
  protected async createIndexConcurrently(name: string, definition: string): Promise<void> {
    const [existing] = await this.execute(
      `select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid
        where c.relname = ? and c.relnamespace = current_schema()::regnamespace`,
      [name],
    );
    if (existing?.valid) return;
    if (existing) await this.execute(`drop index concurrently if exists "${name}"`);
    await this.execute(`create index concurrently "${name}" on ${definition}`);
  }
}
