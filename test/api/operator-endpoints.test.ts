/**
 * Operator endpoints and browser access through the real HTTP server (issue 7): /metrics is not
 * open on the public port, the queue board's cookie is a short-lived board session (never the admin
 * JWT) and a URL token works once, and CORS allows only the configured origins, without credentials.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql } from '../helpers/graphql-client.js';
import { startInProcess, type InProcessSystem } from '../helpers/in-process.js';
import { freePort } from '../helpers/processes.js';
import { createTestEnv, type TestEnv } from '../helpers/test-env.js';

const ALLOWED_ORIGIN = 'https://dashboard.example';

let env: TestEnv;
let system: InProcessSystem;
let origin: string;
let metricsPort: number;

beforeAll(async () => {
  env = await createTestEnv();
  metricsPort = await freePort();
  system = await startInProcess(env, { worker: false, vars: { CORS_ORIGINS: ALLOWED_ORIGIN, METRICS_PORT: String(metricsPort) } });
  origin = new URL(system.url).origin;
});

afterAll(async () => {
  await system?.stop();
  await env?.cleanup();
});

describe('/metrics', () => {
  it('is not served on the public port without the metrics token', async () => {
    expect((await fetch(`${origin}/metrics`)).status).toBe(404);
    const admin = await env.token('root', 'admin');
    expect((await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(404);
    expect((await fetch(`${origin}/metrics`, { headers: { authorization: 'Bearer wrong-token-of-some-length' } })).status).toBe(404);
    const ok = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${env.vars.METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('jobwire_active_subscriptions');
  });

  it('is served without a token on the separate metrics port, on loopback', async () => {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('jobwire_');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/graphql`)).status).toBe(404);
  });
});

describe('queue board', () => {
  it('needs an admin token', async () => {
    expect((await fetch(`${origin}/admin/queues`, { redirect: 'manual' })).status).toBe(401);
    const user = await env.token('alice');
    expect((await fetch(`${origin}/admin/queues`, { headers: { authorization: `Bearer ${user}` } })).status).toBe(403);
    expect((await fetch(`${origin}/admin/queues?token=${user}`, { redirect: 'manual' })).status).toBe(403);
  });

  it('exchanges a URL token once for a board session cookie that is not the JWT', async () => {
    const admin = await env.token('root', 'admin');
    const first = await fetch(`${origin}/admin/queues?token=${admin}`, { redirect: 'manual', headers: { 'x-forwarded-proto': 'https' } });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/admin/queues');
    const setCookie = first.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^jobwire_board_session=/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Secure/);
    expect(setCookie).toMatch(/Max-Age=900/);
    expect(setCookie).not.toContain(admin);
    const cookie = setCookie.split(';')[0]!;

    const board = await fetch(`${origin}/admin/queues`, { headers: { cookie } });
    expect(board.status).toBe(200);

    // The link is spent, in every spelling the JWT library would accept, and the session is no bearer token for the API.
    for (const spelling of [admin, `${admin}=`, `${admin}%20`, `${admin}%09`, `%20${admin}`]) {
      expect((await fetch(`${origin}/admin/queues?token=${spelling}`, { redirect: 'manual' })).status, spelling.slice(-6)).toBe(401);
    }
    const session = cookie.slice(cookie.indexOf('=') + 1);
    expect((await gql(system.url, session, '{ systemConfig { archiveTrashPurgeEnabled } }')).errors?.[0]?.extensions?.code).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('counts a padded spelling of a token as that token', async () => {
    const admin = await env.token('root', 'admin', 900);
    // The JWT library accepts the padded spelling, so it is a working link the first time...
    expect((await fetch(`${origin}/admin/queues?token=${admin}=`, { redirect: 'manual' })).status).toBe(303);
    // ...and spends the plain spelling with it.
    expect((await fetch(`${origin}/admin/queues?token=${admin}`, { redirect: 'manual' })).status).toBe(401);
  });

  it('sets no Secure flag over plain HTTP', async () => {
    const admin = await env.token('root', 'admin', 600);
    const response = await fetch(`${origin}/admin/queues?token=${admin}`, { redirect: 'manual' });
    expect(response.status).toBe(303);
    expect(response.headers.get('set-cookie')).not.toMatch(/Secure/);
  });
});

describe('CORS', () => {
  const preflight = (from: string) =>
    fetch(system.url, {
      method: 'OPTIONS',
      headers: { origin: from, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

  it('answers an allowed origin, without credentials', async () => {
    const response = await preflight(ALLOWED_ORIGIN);
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('access-control-allow-headers')).toContain('authorization');
  });

  it('never reflects any other origin', async () => {
    for (const from of ['https://evil.example', 'null', `${ALLOWED_ORIGIN}.evil.example`]) {
      const response = await preflight(from);
      expect(response.headers.get('access-control-allow-origin'), from).toBeNull();
      expect(response.headers.get('access-control-allow-credentials'), from).toBeNull();
    }
    const token = await env.token('alice');
    const post = await fetch(system.url, {
      method: 'POST',
      headers: { origin: 'https://evil.example', authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(post.headers.get('access-control-allow-origin')).toBeNull();
  });
});
