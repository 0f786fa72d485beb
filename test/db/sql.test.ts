/**
 * Bound statements (src/db/sql.ts): `positional` turns the `?` placeholders of the statements
 * `runBound` sends into `$n`, only the placeholders; `runBound` sends them on the EntityManager's
 * transaction when it has one, on a pooled connection otherwise.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initOrm, type Orm } from '../../src/db/orm.js';
import { positional, runBound } from '../../src/db/sql.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

describe('positional', () => {
  it('numbers placeholders in order, casts included', () => {
    expect(positional('SELECT * FROM job WHERE id = ANY(?::uuid[]) AND owner_id = ? LIMIT ?')).toBe(
      'SELECT * FROM job WHERE id = ANY($1::uuid[]) AND owner_id = $2 LIMIT $3',
    );
  });

  it('leaves a ? in strings, quoted identifiers and comments alone, whatever quotes or escapes they hold', () => {
    const text = `SELECT 'what?', 'it''s ?', E'it\\'s ?', $$a?b$$, $tag$ ? $tag$, "odd?col" /* why? it's */ FROM t -- why?\n`;
    expect(positional(`${text}WHERE a = ? AND b = 'x'`)).toBe(`${text}WHERE a = $1 AND b = 'x'`);
  });

  it('reads \\? as a literal question mark, as knex does', () => {
    expect(positional('SELECT payload \\? ? FROM job WHERE id = ?')).toBe('SELECT payload ? $1 FROM job WHERE id = $2');
  });
});

describe('runBound', () => {
  let env: TestEnv;
  let orm: Orm;
  beforeAll(async () => {
    env = await createTestEnv();
    orm = await initOrm(env.vars.DATABASE_URL!);
    await env.sql('CREATE TABLE probe (note text)');
  });
  afterAll(async () => {
    await orm?.close();
    await env?.cleanup();
  });
  const fork = () => orm.em.fork() as EntityManager;

  it("runs in the EntityManager's transaction: its statements see each other, and roll back with it", async () => {
    const rollBack = new Error('roll back');
    await expect(
      fork().transactional(async (em) => {
        await runBound(em, 'INSERT INTO probe (note) VALUES (?), (?)', ["what? it's", 'x']);
        expect(await runBound(em, "SELECT note, 'a?' AS literal FROM probe WHERE note = ? ORDER BY note", ["what? it's"])).toEqual([
          { note: "what? it's", literal: 'a?' },
        ]);
        throw rollBack;
      }),
    ).rejects.toBe(rollBack);
    expect(await runBound(fork(), 'SELECT count(*)::int AS n FROM probe', [])).toEqual([{ n: 0 }]);
  });

  it("refuses a statement on a transaction that ended, whose connection is another's by now", async () => {
    let ended: EntityManager | undefined;
    await fork().transactional(async (em) => {
      ended = em;
      await runBound(em, 'SELECT 1', []);
    });
    await expect(runBound(ended!, 'INSERT INTO probe (note) VALUES (?)', ['late'])).rejects.toThrow(/after its transaction ended/);
    expect(await runBound(fork(), 'SELECT count(*)::int AS n FROM probe WHERE note = ?', ['late'])).toEqual([{ n: 0 }]);
  });

  it('binds values, never splices them into the statement', async () => {
    await runBound(fork(), 'INSERT INTO probe (note) VALUES (?)', ["'); DROP TABLE probe; --"]);
    expect(await runBound(fork(), 'SELECT note FROM probe', [])).toEqual([{ note: "'); DROP TABLE probe; --" }]);
  });
});
