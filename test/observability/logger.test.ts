/**
 * The structured logger (src/observability/logger.ts): secret-named fields never reach a line,
 * wherever they sit within three levels, in a line's fields or a child logger's bindings; what
 * is logged is left as the caller had it.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';

function capture() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger('info', {}, stream), lines };
}

describe('createLogger', () => {
  it('censors secret-named fields at every level up to three, in lines and in bindings, and copies only what it censors', () => {
    const { logger, lines } = capture();
    const settings = { host: 'imap.example.com', password: 'hunter2', nested: { token: 'tok-1', deeper: { authorization: 'Bearer x' } } };
    const innocent = { host: 'imap.example.com', count: 3 };
    logger.info({ password: 'top-secret', settings, innocent, list: [{ imapPassword: 'in-array' }] }, 'connecting');
    logger.child({ token: 'bound-token', jobId: 'j1' }).info({ config: { JWT_SECRET: 'jwt' } }, 'child line');
    logger
      .child({ jobId: 'j2' })
      .child({ settings: { archiveKey: 'grandchild-key' } })
      .info('grandchild line');

    const text = JSON.stringify(lines);
    for (const secret of ['top-secret', 'hunter2', 'tok-1', 'in-array', 'bound-token', 'jwt', 'grandchild-key'])
      expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({
      msg: 'connecting',
      password: '[redacted]',
      settings: {
        host: 'imap.example.com',
        password: '[redacted]',
        nested: { token: '[redacted]', deeper: { authorization: 'Bearer x' } },
      },
      innocent: { host: 'imap.example.com', count: 3 },
      list: [{ imapPassword: '[redacted]' }],
    });
    expect(lines[1]).toMatchObject({ msg: 'child line', token: '[redacted]', jobId: 'j1', config: { JWT_SECRET: '[redacted]' } });
    expect(lines[2]).toMatchObject({ msg: 'grandchild line', jobId: 'j2', settings: { archiveKey: '[redacted]' } });
    // Three levels down, as pino's `*.*.name` paths were: a fourth is past the contract, so it shows.
    expect(lines[0]!.settings.nested.deeper.authorization).toBe('Bearer x');
    expect(settings.password).toBe('hunter2');
    expect(settings.nested.token).toBe('tok-1');
  });

  it('censors a frozen object and bindings set later, without throwing', () => {
    const { logger, lines } = capture();
    logger.info({ settings: Object.freeze({ host: 'h', password: 'frozen-secret' }) }, 'frozen');
    const child = logger.child({ jobId: 'j3' });
    child.setBindings({ token: 'late-token' });
    child.info('late bindings');
    expect(JSON.stringify(lines)).not.toMatch(/frozen-secret|late-token/);
    expect(lines[0]).toMatchObject({ settings: { host: 'h', password: '[redacted]' } });
    expect(lines[1]).toMatchObject({ jobId: 'j3', token: '[redacted]' });
  });

  it('keeps an error an error when it censors a field of it', () => {
    const { logger, lines } = capture();
    const error = Object.assign(new Error('login refused'), { password: 'hunter2', code: 'EAUTH' });
    logger.warn({ err: error }, 'imap login failed');
    expect(lines[0]!.err).toMatchObject({ type: 'Error', message: 'login refused', code: 'EAUTH', password: '[redacted]' });
    expect(lines[0]!.err.stack).toContain('login refused');
    expect(error.password).toBe('hunter2');
  });
});
