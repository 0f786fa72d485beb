/**
 * What an operator's debug log says of a refused request: one line with the message, no
 * stack, and never a secret the caller sent (an operator probe found an IMAP password there).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { gql } from '../helpers/graphql-client.js';
import { type ApiProc, startApi } from '../helpers/processes.js';
import { createTestEnv, type TestEnv, waitFor } from '../helpers/test-env.js';

let env: TestEnv;
let api: ApiProc;

beforeAll(async () => {
  env = await createTestEnv();
  api = await startApi({ ...env.vars, LOG_LEVEL: 'debug' });
});

afterAll(async () => {
  await api?.stop();
  await env?.cleanup();
});

it('logs a refused request as one line without a stack, and without the password it refused', async () => {
  const token = await env.token('alice');
  const response = await gql(api.url, token, 'mutation($i: ImapSettingsInput) { createAccount(input: { name: "x", imap: $i }) { id } }', {
    i: { host: 'imap.example.com', user: 'me', password: 99_887_766_123 },
  });
  expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  const refusals = await waitFor('the refusal to be logged', () => {
    const lines = api
      .output()
      .split('\n')
      .filter((line) => line.includes('refused GraphQL request'));
    return lines.length > 0 ? lines : null;
  });
  for (const line of refusals) {
    expect(line).not.toContain('99887766123');
    expect(line).not.toMatch(/\\n\s+at /);
  }
  expect(refusals.join('\n')).toContain('i.password');
});
