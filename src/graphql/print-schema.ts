// `npm run schema`: prints the schema; `npm run schema -- --write` updates schema.graphql.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printSchema } from 'graphql';
import { printableSchema } from './schema/index.js';

const printed = `${printSchema(printableSchema())}\n`;
if (process.argv.includes('--write')) {
  writeFileSync(fileURLToPath(new URL('../../schema.graphql', import.meta.url)), printed);
  console.error('schema.graphql updated');
} else {
  process.stdout.write(printed);
}
