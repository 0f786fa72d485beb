/**
 * docker-compose.yml's fallback secrets are public: a production process that runs with them says
 * so (an operator probe found them accepted silently), never printing the values.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { loadConfig, publishedSecretWarnings } from '../../src/config/env.js';

/** The fallback of `NAME: ${NAME:-value}` in docker-compose.yml. */
function composeDefault(name: string): string {
  const compose = readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
  return new RegExp(`${name}: \\$\\{${name}:-([^}]+)\\}`).exec(compose)![1]!;
}

it("warns, in production, while JWT_SECRET or ARCHIVE_KEY is docker-compose.yml's published default", () => {
  const composed = { NODE_ENV: 'production', JWT_SECRET: composeDefault('JWT_SECRET'), ARCHIVE_KEY: composeDefault('ARCHIVE_KEY') };
  const warnings = publishedSecretWarnings(loadConfig(composed));
  expect(warnings).toHaveLength(2);
  expect(warnings.join(' ')).not.toContain(composed.JWT_SECRET);
  expect(warnings.join(' ')).not.toContain(composed.ARCHIVE_KEY);
  expect(publishedSecretWarnings(loadConfig({ ...composed, NODE_ENV: 'development' }))).toEqual([]);
  const own = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(48), ARCHIVE_KEY: Buffer.alloc(32, 7).toString('base64') };
  expect(publishedSecretWarnings(loadConfig(own))).toEqual([]);
});
