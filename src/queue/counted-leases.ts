import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Options of {@link CountedLeases}. */
export interface CountedLeasesOptions {
  /** How long a lease lasts without being refreshed, in milliseconds: how long a crashed process's leases still count. (Default: 30000) */
  ttlMs?: number;
  /** How often this process refreshes its live leases, in milliseconds. (Default: ttlMs / 3) */
  refreshMs?: number;
}

/** One slot held against its group's cap (an open subscription, a running job). */
export interface Lease {
  /** Starts refreshing the lease; until then it lapses by itself after the TTL (a slot taken but never used is not held for long). */
  keepAlive(): void;
  /** Frees the slot at once; safe to call more than once. */
  release(): Promise<void>;
}

export type LeaseOutcome = { granted: true; lease: Lease } | { granted: false; open: number; retryAfterMs: number };

// KEYS[1] the group's ZSET; ARGV: ttl ms, max, member. Scores are expiry times on Redis's clock, so
// processes with skewed clocks agree. Returns {1, open} or {0, open, ms until the earliest lease lapses}.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, open, tonumber(first[2]) - now}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {1, open + 1}
`;

// KEYS[1] the group's ZSET; ARGV: ttl ms, members... Only members still present are extended (XX):
// a lease that already lapsed stays gone rather than coming back over the cap.
const REFRESH = `
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
`;

// KEYS[1] the group's ZSET. Lapsed leases are dropped first, so what is left is held.
const HELD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`;

/**
 * Slots counted per group across every process: one Redis sorted set per group
 * (`<namespace>:<group>`), one member per slot, scored by its lease expiry. Each process refreshes
 * the leases it holds; a crashed process's leases lapse after the TTL. Used for each user's open
 * subscriptions (`<prefix>:subs:<user>`) and each owner's running jobs of a type
 * (`<prefix>:owner-slots:<type>:<owner>`).
 */
export class CountedLeases {
  private readonly ttlMs: number;
  private readonly refreshMs: number;
  /** Live (kept-alive) leases of this process: key → members. */
  private readonly live = new Map<string, Set<string>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly namespace: string,
    options: CountedLeasesOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.refreshMs = options.refreshMs ?? Math.max(100, Math.floor(this.ttlMs / 3));
  }

  /** Takes a slot of `group` if fewer than `max` are held; otherwise says how many are and when one may lapse. */
  async acquire(group: string, max: number): Promise<LeaseOutcome> {
    const key = `${this.namespace}:${group}`;
    const member = randomUUID();
    const reply = (await this.redis.eval(ACQUIRE, 1, key, this.ttlMs, max, member)) as number[];
    if (reply[0] !== 1) return { granted: false, open: Number(reply[1]), retryAfterMs: Math.max(0, Number(reply[2] ?? this.ttlMs)) };
    let released = false;
    return {
      granted: true,
      lease: {
        keepAlive: () => {
          if (released) return;
          let members = this.live.get(key);
          if (!members) {
            members = new Set();
            this.live.set(key, members);
          }
          members.add(member);
          this.timer ??= setInterval(() => void this.refresh(), this.refreshMs).unref();
        },
        release: async () => {
          if (released) return;
          released = true;
          const members = this.live.get(key);
          members?.delete(member);
          if (members?.size === 0) this.live.delete(key);
          if (this.live.size === 0 && this.timer) {
            clearInterval(this.timer);
            this.timer = null;
          }
          // A failed removal is not retried: the lease is no longer refreshed and lapses after the TTL.
          await this.redis.zrem(key, member).catch(() => {});
        },
      },
    };
  }

  /** How many slots of `group` are held now. */
  async held(group: string): Promise<number> {
    return Number(await this.redis.eval(HELD, 1, `${this.namespace}:${group}`));
  }

  /** Extends every live lease of this process, one script per group, in one round trip. */
  private async refresh(): Promise<void> {
    if (this.live.size === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [key, members] of this.live) pipeline.eval(REFRESH, 1, key, this.ttlMs, ...members);
    // While Redis is away the leases are simply not extended; the next tick tries again.
    await pipeline.exec().catch(() => {});
  }
}
