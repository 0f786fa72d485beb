import { readFileSync } from 'node:fs';
import { printSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { printableSchema } from '../../src/graphql/schema/index.js';
import { jobCatalogue } from '../../src/jobs/registry.js';

describe('schema.graphql', () => {
  it('is what the builder prints (run `npm run schema -- --write` after changing the schema)', () => {
    const committed = readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(`${printSchema(printableSchema())}\n`);
  });

  it('has, for every declared job type, its mutation returning its concrete Job type', () => {
    const schema = printableSchema();
    const mutations = schema.getMutationType()!.getFields();
    for (const declaration of jobCatalogue) {
      const mutation = mutations[declaration.graphql.mutation];
      expect(mutation, `mutation ${declaration.graphql.mutation}`).toBeDefined();
      expect(String(mutation!.type)).toBe(`${declaration.graphql.typeName}!`);
      expect(mutation!.args.map((arg) => arg.name)).toContain('options');
      const type = schema.getType(declaration.graphql.typeName) as { getInterfaces?: () => { name: string }[]; getFields?: () => object };
      expect(type.getInterfaces!().map((i) => i.name)).toEqual(['Job']);
      expect(Object.keys(type.getFields!())).toEqual(expect.arrayContaining(['output', 'progress', 'status']));
    }
  });

  it('exposes no internals of the job types: no storage paths, no placeholder fields', () => {
    const printed = printSchema(printableSchema());
    expect(printed).not.toMatch(/uploadKey|_empty/);
    const fields = (name: string) => Object.keys((printableSchema().getType(name) as { getFields(): object }).getFields());
    expect(fields('ImportMboxParams')).toEqual(['accountId', 'filename', 'size']);
    expect(fields('PurgeArchiveTrashJob')).not.toContain('input');
  });

  it('declares admin-only mutations on the field', () => {
    for (const declaration of jobCatalogue.filter((d) => d.graphql.adminOnly)) {
      const mutation = printableSchema().getMutationType()!.getFields()[declaration.graphql.mutation]!;
      expect(mutation.extensions?.pothosOptions).toMatchObject({ authScopes: { admin: true } });
    }
    expect(jobCatalogue.filter((d) => d.graphql.adminOnly).map((d) => d.name)).toEqual(['purge_archive_trash']);
  });

  it('gives each job type a unique name, mutation and GraphQL type', () => {
    for (const key of ['name', 'mutation', 'typeName'] as const) {
      const values = jobCatalogue.map((d) => (key === 'name' ? d.name : d.graphql[key]));
      expect(new Set(values).size).toBe(values.length);
    }
  });
});
