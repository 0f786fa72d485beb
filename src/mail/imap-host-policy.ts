import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { listSetting } from '../config/env.js';

/** One address as the resolver returns it (the shape of `dns.promises.lookup(host, { all: true })`). */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has. */
export type HostLookup = (host: string) => Promise<ResolvedAddress[]>;

/** Options of {@link ImapHostPolicy}. */
export interface ImapHostPolicyOptions {
  /** Resolver used at connect time and for numeric host spellings. (Default: `dns.promises.lookup` with `all: true`) */
  lookup?: HostLookup;
}

/**
 * The host is not one the worker may connect to, or not a host at all. `reason` is meant for the
 * caller who typed the host (API validation) or for the worker log; it never leaves the worker
 * through a job's stored error.
 */
export class ImapHostRefusedError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'ImapHostRefusedError';
  }
}

/** The longest host name DNS can carry. */
const MAX_HOST_LENGTH = 253;
/** Letters, digits, hyphen and underscore per label (underscore: some internal names use it). */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;
/** A last label made only of digits or 0x-hex is an IPv4 spelling to inet_aton, never a DNS name. */
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|[0-9]+)$/i;
/** IPv4-compatible IPv6 (deprecated): ipaddr.js calls it unicast, but it embeds an IPv4 address. */
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * Where the IMAP importer may connect: public unicast addresses, plus what the operator allows in
 * `IMAP_ALLOWED_HOSTS` (host names, IP addresses, CIDR ranges). Everything else — loopback,
 * private, link-local, unique-local, unspecified, CGNAT, multicast, broadcast, reserved and
 * documentation ranges, 6to4/Teredo/NAT64 wrappers — is refused, so a user cannot point the worker
 * at the operator's own network.
 */
export class ImapHostPolicy {
  private readonly names = new Set<string>();
  private readonly ranges: Array<[Address, number]> = [];
  private readonly lookup: HostLookup;

  /**
   * @param allowed entries of `IMAP_ALLOWED_HOSTS`, already split (see `listSetting`)
   * @throws Error for an entry that is neither a host name, an IP address nor a CIDR range
   */
  constructor(allowed: readonly string[], options: ImapHostPolicyOptions = {}) {
    this.lookup = options.lookup ?? ((host) => dns.promises.lookup(host, { all: true, verbatim: true }));
    for (const raw of allowed) {
      const entry = raw.trim();
      if (!entry) continue;
      if (entry.includes('/')) {
        const cidr = parseCidr(entry);
        if (!cidr) throw new Error(`IMAP_ALLOWED_HOSTS: "${entry.slice(0, 60)}" is not a valid CIDR range`);
        this.ranges.push(cidr);
        continue;
      }
      const address = parseStandardAddress(entry);
      if (address) {
        this.ranges.push([address, address.kind() === 'ipv4' ? 32 : 128]);
        continue;
      }
      const name = normaliseHost(entry);
      if (hostSyntaxError(name))
        throw new Error(`IMAP_ALLOWED_HOSTS: "${entry.slice(0, 60)}" is not a host name, IP address or CIDR range`);
      this.names.add(name);
    }
  }

  /** True for a public unicast address, or one the allow-list covers. IPv4-mapped IPv6 counts as its IPv4 address. */
  allowsAddress(address: string): boolean {
    const parsed = parseStandardAddress(address);
    if (!parsed) return false;
    if (this.ranges.some(([base, bits]) => base.kind() === parsed.kind() && parsed.match(base, bits))) return true;
    return isPublicUnicast(parsed);
  }

  /** True when the allow-list names this host (case and a trailing dot do not matter). */
  allowsName(host: string): boolean {
    return this.names.has(normaliseHost(host));
  }

  /**
   * What the API checks before storing a host: sane syntax, and no literal address (in any
   * spelling the resolver accepts, such as `2130706433` or `127.1`) or `localhost` name that
   * points inside. Names are not resolved here: DNS can change before the import runs, so
   * {@link resolve} checks again at connect time.
   *
   * @returns the host as it should be stored (trimmed, IPv6 brackets removed)
   * @throws ImapHostRefusedError with a reason fit to show the caller
   */
  async checkHost(input: string): Promise<string> {
    const host = stripBrackets(input.trim());
    const syntax = hostSyntaxError(host);
    if (syntax) throw new ImapHostRefusedError(syntax);
    if (this.allowsName(host)) return host;
    if (net.isIP(host)) {
      this.assertAddress(host);
      return host;
    }
    const name = normaliseHost(host);
    if (name === 'localhost' || name.endsWith('.localhost')) {
      throw new ImapHostRefusedError('localhost is refused: the server does not connect to its own loopback interface');
    }
    if (NUMERIC_LABEL.test(name.split('.').pop() ?? '')) {
      // An IPv4 address in a spelling inet_aton accepts: ask the resolver what it means, don't guess.
      if (!ipaddr.IPv4.isValid(name)) throw new ImapHostRefusedError('is neither a valid host name nor a valid IP address');
      const addresses = await this.lookup(host).catch(() => [] as ResolvedAddress[]);
      if (addresses.length === 0) throw new ImapHostRefusedError('is neither a valid host name nor a valid IP address');
      for (const { address } of addresses) this.assertAddress(address);
      // ipaddr.js reads the spelling too; both readings must be allowed.
      this.assertAddress(ipaddr.IPv4.parse(name).toString());
    }
    return host;
  }

  /**
   * Resolves `host` and checks every address it has; the caller connects to one of the returned
   * addresses (not to the name again), so a second DNS answer cannot swap in another one.
   *
   * @returns the vetted addresses, in the resolver's order
   * @throws ImapHostRefusedError when the host is malformed or any address is refused
   * @throws the resolver's error when the name does not resolve (a network failure, not a refusal)
   */
  async resolve(input: string): Promise<string[]> {
    const host = stripBrackets(input.trim());
    const syntax = hostSyntaxError(host);
    if (syntax) throw new ImapHostRefusedError(`host ${syntax}`);
    const byName = this.allowsName(host);
    const addresses = net.isIP(host) ? [{ address: host, family: net.isIP(host) }] : await this.lookup(host);
    if (addresses.length === 0) throw new Error(`${host} has no addresses`);
    // Every address, not only the first: the connection must not depend on which one is picked.
    if (!byName) for (const { address } of addresses) this.assertAddress(address);
    return addresses.map(({ address }) => address);
  }

  private assertAddress(address: string): void {
    if (this.allowsAddress(address)) return;
    const parsed = parseStandardAddress(address);
    const range = parsed ? (isIpv4Compatible(parsed) ? 'IPv4-compatible' : parsed.range()) : 'unparsable';
    throw new ImapHostRefusedError(
      `the address ${address} is ${range}, not a public unicast address; the server only connects to ` +
        'those, or to hosts the operator lists in IMAP_ALLOWED_HOSTS',
    );
  }
}

/** Builds the policy from the raw `IMAP_ALLOWED_HOSTS` value; the last one built is reused. */
export function imapHostPolicy(setting: string): ImapHostPolicy {
  if (cached?.setting !== setting) cached = { setting, policy: new ImapHostPolicy(listSetting(setting)) };
  return cached.policy;
}
let cached: { setting: string; policy: ImapHostPolicy } | undefined;

/** Why `host` is not a syntactically sane host name or IP literal, or null when it is. */
export function hostSyntaxError(host: string): string | null {
  if (host.length === 0) return 'must not be empty';
  if (host.length > MAX_HOST_LENGTH) return `must be at most ${MAX_HOST_LENGTH} characters`;
  // Whitespace, NUL and other controls never belong in a host, and could split a log line.
  if (/[\s\p{Cc}]/u.test(host)) return 'must not contain spaces or control characters';
  if (net.isIP(host)) return host.includes('%') ? 'must not carry an IPv6 zone id' : null;
  const labels = normaliseHost(host).split('.');
  if (!labels.every((label) => LABEL.test(label))) return 'is neither a valid host name nor a valid IP address';
  return null;
}

/**
 * True when `host` names an address rather than a DNS name: an IP literal (IPv6 with or without
 * brackets) or an IPv4 spelling such as `127.1`. TLS must not send such a host as SNI.
 */
export function isAddressLiteral(host: string): boolean {
  const bare = stripBrackets(host.trim());
  return net.isIP(bare) !== 0 || ipaddr.IPv4.isValid(bare);
}

function normaliseHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Only the standard spellings (dotted quad, RFC 4291 IPv6); IPv4-mapped IPv6 becomes IPv4. */
function parseStandardAddress(text: string): Address | null {
  if (!net.isIP(text) || text.includes('%')) return null;
  try {
    return ipaddr.process(text);
  } catch {
    return null;
  }
}

function parseCidr(entry: string): [Address, number] | null {
  try {
    const [base, bits] = ipaddr.parseCIDR(entry);
    // "::ffff:10.0.0.0/104" means 10.0.0.0/8: compare it the way addresses are compared.
    if (base.kind() === 'ipv6' && (base as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(base as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return [base, bits];
  } catch {
    return null;
  }
}

function isIpv4Compatible(address: Address): boolean {
  return address.kind() === 'ipv6' && (address as ipaddr.IPv6).match(IPV4_COMPATIBLE);
}

function isPublicUnicast(address: Address): boolean {
  return address.range() === 'unicast' && !isIpv4Compatible(address);
}
