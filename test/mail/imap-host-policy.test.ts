import dns from 'node:dns';
import { describe, expect, it } from 'vitest';
import { hostSyntaxError, ImapHostPolicy, ImapHostRefusedError, isAddressLiteral } from '../../src/mail/imap-host-policy.js';

/** Every address that is not plain public unicast, one or more per range. */
const BLOCKED = [
  '127.0.0.1',
  '127.8.9.10', // loopback
  '10.0.0.1',
  '172.16.5.4',
  '192.168.1.1', // private
  '169.254.169.254', // link-local (cloud metadata)
  '100.64.0.1', // carrier-grade NAT
  '0.0.0.0',
  '0.1.2.3', // unspecified, "this network"
  '224.0.0.1',
  '255.255.255.255', // multicast, broadcast
  '192.0.2.1',
  '198.18.0.1',
  '240.0.0.1', // documentation, benchmarking, reserved
  '::1',
  '::', // loopback, unspecified
  'fe80::1',
  'fd00::1',
  'fc00::5', // link-local, unique-local
  'ff02::1', // multicast
  '2001:db8::1', // documentation
  '::ffff:127.0.0.1',
  '::ffff:10.0.0.1',
  '::ffff:7f00:1', // IPv4-mapped
  '::7f00:1', // IPv4-compatible
  '64:ff9b::a00:1', // NAT64 of 10.0.0.1
  '2002:7f00:1::1', // 6to4 wrapping 127.0.0.1
  '2001::1', // Teredo
];

const PUBLIC = ['93.184.215.14', '8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e', '::ffff:8.8.8.8'];

/** A resolver that answers from a table, so names resolve without DNS. */
function fakeLookup(table: Record<string, string[]>) {
  return async (host: string) => {
    const addresses = table[host.toLowerCase()];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

async function refusal(promise: Promise<unknown>): Promise<ImapHostRefusedError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ImapHostRefusedError);
  return error as ImapHostRefusedError;
}

describe('ImapHostPolicy', () => {
  const none = new ImapHostPolicy([]);

  it.each(BLOCKED)('refuses %s without an allow-list', async (address) => {
    expect(none.allowsAddress(address)).toBe(false);
    await refusal(none.checkHost(address));
    await refusal(none.resolve(address));
  });

  it.each(PUBLIC)('allows the public address %s', async (address) => {
    expect(none.allowsAddress(address)).toBe(true);
    await expect(none.checkHost(address)).resolves.toBe(address);
    await expect(none.resolve(address)).resolves.toEqual([address]);
  });

  it('accepts IPv6 in brackets and stores it without them', async () => {
    await expect(none.checkHost('[2606:4700:4700::1111]')).resolves.toBe('2606:4700:4700::1111');
    await refusal(none.checkHost('[::1]'));
  });

  it('reads IPv4 in the spellings the resolver accepts as the address they are', async () => {
    for (const spelling of ['2130706433', '0x7f.1', '127.1', '0x7f000001', '017700000001', '0177.0.0.1', '10.1']) {
      // The system resolver agrees that these are addresses inside: the check must not be fooled.
      const [resolved] = await dns.promises.lookup(spelling, { all: true });
      expect(none.allowsAddress(resolved!.address), spelling).toBe(false);
      await refusal(none.checkHost(spelling));
      await refusal(none.resolve(spelling));
    }
    // A numeric last label that is no address at all is no host name either.
    await refusal(none.checkHost('1.2.3.4.5'));
    await refusal(none.checkHost('999.1.1.1'));
  });

  it('refuses localhost by name, in any case, with a trailing dot and as a parent domain', async () => {
    for (const name of ['localhost', 'LOCALHOST', 'localhost.', 'imap.localhost']) await refusal(none.checkHost(name));
  });

  it('refuses hosts that are not sane syntax', async () => {
    for (const bad of [
      '',
      ' ',
      'imap example.com',
      'imap\0.example.com',
      'a'.repeat(254),
      'imap..example.com',
      '-imap.example.com',
      'fe80::1%eth0',
      'http://x',
      'x/y',
      'user@host',
    ]) {
      await refusal(none.checkHost(bad));
      expect(hostSyntaxError(bad.trim()), JSON.stringify(bad)).not.toBeNull();
    }
    for (const good of [
      'imap.example.com',
      'IMAP.Example.COM.',
      'mail-1.example.co.uk',
      `${'a'.repeat(63)}.example.com`,
      '8.8.8.8',
      '2001:4860::8888',
    ]) {
      expect(hostSyntaxError(good), good).toBeNull();
    }
  });

  it('allows addresses and CIDR ranges from the allow-list, IPv4-mapped IPv6 included', async () => {
    const policy = new ImapHostPolicy(['127.0.0.1', '10.1.0.0/16', 'fd12:3456::/32', '::ffff:192.168.7.0/120']);
    for (const address of [
      '127.0.0.1',
      '::ffff:127.0.0.1',
      '10.1.2.3',
      '::ffff:10.1.255.255',
      'fd12:3456::1',
      '192.168.7.20',
      '::ffff:192.168.7.20',
    ]) {
      expect(policy.allowsAddress(address), address).toBe(true);
    }
    for (const address of ['127.0.0.2', '10.2.0.1', '::1', 'fd12:3457::1', '192.168.8.1', '169.254.169.254']) {
      expect(policy.allowsAddress(address), address).toBe(false);
    }
    await expect(policy.checkHost('10.1.0.7')).resolves.toBe('10.1.0.7');
    await refusal(policy.checkHost('10.2.0.7'));
    // An allowed address in another spelling is still that address.
    await expect(policy.resolve('127.1')).resolves.toEqual(['127.0.0.1']);
  });

  it('allows a listed host name whatever it resolves to, and checks every address of other names', async () => {
    const lookup = fakeLookup({
      'imap.internal': ['10.9.9.9'],
      'rebind.example.test': ['93.184.215.14', '127.0.0.1'],
      'public.example.test': ['93.184.215.14', '2606:4700:4700::1111'],
      'mapped.example.test': ['::ffff:169.254.169.254'],
    });
    const policy = new ImapHostPolicy(['IMAP.Internal'], { lookup });
    await expect(policy.checkHost('imap.internal.')).resolves.toBe('imap.internal.');
    await expect(policy.resolve('imap.internal')).resolves.toEqual(['10.9.9.9']);
    await expect(policy.resolve('public.example.test')).resolves.toEqual(['93.184.215.14', '2606:4700:4700::1111']);
    // A name passes the API's check (it is not resolved there) but not the one at connect time.
    await expect(policy.checkHost('rebind.example.test')).resolves.toBe('rebind.example.test');
    expect((await refusal(policy.resolve('rebind.example.test'))).reason).toContain('127.0.0.1');
    await refusal(policy.resolve('mapped.example.test'));
    // Not resolving is a network failure, not a refusal.
    const missing = await policy.resolve('missing.example.test').catch((e: unknown) => e);
    expect(missing).not.toBeInstanceOf(ImapHostRefusedError);
  });

  it('refuses a malformed allow-list entry loudly instead of ignoring it', () => {
    expect(() => new ImapHostPolicy(['10.0.0.0/33'])).toThrow(/CIDR/);
    expect(() => new ImapHostPolicy(['not a host'])).toThrow(/IMAP_ALLOWED_HOSTS/);
  });

  it('tells address literals (no SNI) from names', () => {
    for (const literal of ['127.0.0.1', '::1', '[::1]', '2130706433', '127.1']) expect(isAddressLiteral(literal), literal).toBe(true);
    for (const name of ['imap.example.com', 'localhost']) expect(isAddressLiteral(name), name).toBe(false);
  });
});
