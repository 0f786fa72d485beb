import type { EntityManager } from '@mikro-orm/postgresql';
import { describe, expect, it } from 'vitest';
import { compileRule } from '../../src/mail/rules/compile-rule.js';
import { InvalidRuleError } from '../../src/mail/rules/invalid-rule-error.js';
import type { RuleConditions, RuleMessageView } from '../../src/mail/rules/rule-conditions.js';
import { RULE_SCAN_PAUSE_EVERY_TESTS, RuleTestBudget, scanRuleMatches } from '../../src/mail/rules/scan-rule.js';

const now = new Date('2024-06-30T12:00:00Z');

function view(overrides: Partial<RuleMessageView> = {}): RuleMessageView {
  return {
    from: 'Deals@Shop.example',
    to: ['me@home.example', 'team@work.example'],
    subject: 'Your Weekly DEALS',
    date: new Date('2024-06-20T12:00:00Z'), // 10 days before `now`
    size: 20_000,
    hasAttachments: false,
    labels: ['promo'],
    isRead: true,
    ...overrides,
  };
}

function matches(rule: RuleConditions, message: RuleMessageView = view()): boolean {
  return compileRule(rule).matches(message, now);
}

/** Compiles and returns the thrown error, failing if nothing is thrown. */
function rejection(rule: unknown): InvalidRuleError {
  try {
    compileRule(rule as RuleConditions);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRuleError);
    return error as InvalidRuleError;
  }
  throw new Error('expected compileRule to throw');
}

describe('compileRule: conditions', () => {
  it('compares text case-insensitively', () => {
    expect(matches({ match: 'ALL', conditions: [{ field: 'FROM', op: 'EQUALS', value: 'deals@shop.EXAMPLE' }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'FROM', op: 'EQUALS', value: 'deals@shop' }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'weekly deals' }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: 'monthly' }] })).toBe(false);
  });

  it('matches TO when any recipient matches', () => {
    expect(matches({ match: 'ALL', conditions: [{ field: 'TO', op: 'CONTAINS', value: '@work.example' }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'TO', op: 'CONTAINS', value: '@school.example' }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'TO', op: 'CONTAINS', value: 'me' }] }, view({ to: [] }))).toBe(false);
  });

  it('runs MATCHES as a case-insensitive regular expression', () => {
    const rule: RuleConditions = { match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'MATCHES', value: '^your (weekly|daily) deals$' }] };
    expect(matches(rule)).toBe(true);
    expect(matches(rule, view({ subject: 'Your monthly deals' }))).toBe(false);
    expect(matches(rule, view({ subject: null }))).toBe(false);
  });

  it('treats a missing subject as empty text', () => {
    const rule: RuleConditions = { match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'EQUALS', value: '' }] };
    expect(matches(rule, view({ subject: null }))).toBe(true);
    expect(matches(rule)).toBe(false);
  });

  it('answers a catastrophic-backtracking pattern without hanging (RE2 is linear)', () => {
    const rule: RuleConditions = { match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'MATCHES', value: '(a+)+$' }] };
    expect(matches(rule, view({ subject: `${'a'.repeat(50_000)}b` }))).toBe(false);
    expect(matches(rule, view({ subject: 'baaa' }))).toBe(true);
  });

  it('measures age in days from `now`, never matching an undated message', () => {
    expect(matches({ match: 'ALL', conditions: [{ field: 'AGE_DAYS', op: 'GT', value: 9 }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'AGE_DAYS', op: 'GT', value: 11 }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'AGE_DAYS', op: 'LT', value: 11 }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'AGE_DAYS', op: 'LT', value: 9 }] })).toBe(false);
    expect(matches({ match: 'ANY', conditions: [{ field: 'AGE_DAYS', op: 'LT', value: 1000 }] }, view({ date: null }))).toBe(false);
  });

  it('compares size in bytes, attachments, read state and labels', () => {
    expect(matches({ match: 'ALL', conditions: [{ field: 'SIZE', op: 'GT', value: 19_999 }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'SIZE', op: 'GT', value: 20_000 }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'SIZE', op: 'LT', value: 20_001 }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'HAS_ATTACHMENTS', value: true }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'HAS_ATTACHMENTS', value: false }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'IS_READ', value: true }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'IS_READ', value: false }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'LABEL', op: 'HAS', value: 'promo' }] })).toBe(true);
    expect(matches({ match: 'ALL', conditions: [{ field: 'LABEL', op: 'NOT_HAS', value: 'promo' }] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [{ field: 'LABEL', op: 'NOT_HAS', value: 'work' }] })).toBe(true);
  });
});

describe('compileRule: ALL and ANY', () => {
  const fromShop = { field: 'FROM', op: 'CONTAINS', value: 'shop.example' } as const;
  const hasAttachments = { field: 'HAS_ATTACHMENTS', value: true } as const;

  it('ALL needs every condition', () => {
    expect(matches({ match: 'ALL', conditions: [fromShop, hasAttachments] })).toBe(false);
    expect(matches({ match: 'ALL', conditions: [fromShop, hasAttachments] }, view({ hasAttachments: true }))).toBe(true);
  });

  it('ANY needs one condition', () => {
    expect(matches({ match: 'ANY', conditions: [fromShop, hasAttachments] })).toBe(true);
    expect(matches({ match: 'ANY', conditions: [fromShop, hasAttachments] }, view({ from: 'friend@home.example' }))).toBe(false);
  });
});

describe('compileRule: validation', () => {
  it('names its error class', () => {
    expect(rejection({ match: 'ALL', conditions: [] }).name).toBe('InvalidRuleError');
  });

  it('rejects an empty condition list and an unknown match', () => {
    expect(rejection({ match: 'ALL', conditions: [] }).message).toBe('a rule needs at least one condition');
    expect(rejection({ match: 'SOME', conditions: [{ field: 'IS_READ', value: true }] }).message).toBe(
      'match must be ALL or ANY, got "SOME"',
    );
    expect(rejection(null).message).toBe('rule conditions must be an object');
  });

  it('rejects invalid and over-long regular expressions', () => {
    const bad = rejection({ match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'MATCHES', value: '(unclosed' }] });
    expect(bad.message).toMatch(/^conditions\[0\]: invalid regular expression: /);
    expect(bad.conditionIndex).toBe(0);
    // Lookahead is valid in JavaScript but not in RE2.
    expect(rejection({ match: 'ALL', conditions: [{ field: 'FROM', op: 'MATCHES', value: '(?=x)x' }] }).message).toMatch(
      /invalid regular expression/,
    );
    expect(rejection({ match: 'ALL', conditions: [{ field: 'FROM', op: 'MATCHES', value: 'a'.repeat(501) }] }).message).toBe(
      'conditions[0]: regular expression is longer than 500 characters',
    );
    expect(() => compileRule({ match: 'ALL', conditions: [{ field: 'FROM', op: 'MATCHES', value: 'a'.repeat(500) }] })).not.toThrow();
  });

  it('rejects negative and non-numeric numbers', () => {
    expect(
      rejection({
        match: 'ALL',
        conditions: [
          { field: 'IS_READ', value: true },
          { field: 'AGE_DAYS', op: 'GT', value: -1 },
        ],
      }).message,
    ).toBe('conditions[1]: value must be a non-negative finite number');
    expect(rejection({ match: 'ALL', conditions: [{ field: 'SIZE', op: 'LT', value: '100' }] }).message).toBe(
      'conditions[0]: value must be a non-negative finite number',
    );
    expect(rejection({ match: 'ALL', conditions: [{ field: 'SIZE', op: 'LT', value: Number.NaN }] }).conditionIndex).toBe(0);
  });

  it('rejects unknown fields and operators, and wrongly typed values', () => {
    expect(rejection({ match: 'ALL', conditions: [{ field: 'BODY', op: 'CONTAINS', value: 'x' }] }).message).toMatch(
      /^conditions\[0\]: unknown field "BODY"/,
    );
    expect(rejection({ match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'STARTS_WITH', value: 'x' }] }).message).toMatch(
      /^conditions\[0\]: unknown operator "STARTS_WITH"/,
    );
    expect(rejection({ match: 'ALL', conditions: [{ field: 'AGE_DAYS', op: 'EQ', value: 3 }] }).message).toMatch(/unknown operator "EQ"/);
    expect(rejection({ match: 'ALL', conditions: [{ field: 'LABEL', op: 'IS', value: 'x' }] }).message).toMatch(/unknown operator "IS"/);
    expect(rejection({ match: 'ALL', conditions: [{ field: 'IS_READ', value: 'yes' }] }).message).toBe(
      'conditions[0]: value must be true or false',
    );
    expect(rejection({ match: 'ALL', conditions: [{ field: 'SUBJECT', op: 'CONTAINS', value: '' }] }).message).toBe(
      'conditions[0]: CONTAINS needs a non-empty value',
    );
    expect(rejection({ match: 'ALL', conditions: ['FROM'] }).message).toBe('conditions[0]: condition must be an object');
  });
});

describe('compileRule: cost', () => {
  it('counts one test per condition and one per recipient for each TO condition', () => {
    const rule = compileRule({
      match: 'ANY',
      conditions: [
        { field: 'TO', op: 'MATCHES', value: '(x|y)+z' },
        { field: 'TO', op: 'CONTAINS', value: 'x' },
        { field: 'SUBJECT', op: 'CONTAINS', value: 'x' },
      ],
    });
    expect(rule.cost(view({ to: Array.from({ length: 200 }, (_, i) => `r${i}@example.com`) }))).toBe(401);
    expect(rule.cost(view({ to: [] }))).toBe(3);
  });
});

/** An entity manager whose message table holds `count` rows, each with `recipients` recipients, served in id order. */
function fakeMailbox(count: number, recipients: number): { em: EntityManager; queries: number } {
  const rows = Array.from({ length: count }, (_, i) => ({
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    created_key: '2024-06-30 12:00:00+00',
    from_address: 'a@example.com',
    to_addresses: Array.from({ length: recipients }, (_, r) => `r${r}@example.com`),
    cc_addresses: [],
    subject: `message ${i}`,
    date: now,
    size: 100,
    attachment_count: 0,
    labels: [],
    is_read: false,
  }));
  const mailbox = { em: null as unknown as EntityManager, queries: 0 };
  const connection = {
    execute: async (_sql: string, params: unknown[]) => {
      mailbox.queries++;
      const after = params.length === 3 ? String(params[1]) : null;
      const limit = Number(params[params.length - 1]);
      return rows.filter((row) => after === null || row.id > after).slice(0, limit);
    },
  };
  mailbox.em = { getConnection: () => connection } as unknown as EntityManager;
  return mailbox;
}

const toRule = compileRule({ match: 'ANY', conditions: [{ field: 'TO', op: 'MATCHES', value: '(x|y)+z' }] });

describe('scanRuleMatches: bounded work', () => {
  it('stops at the message cap and reports it, without reading further', async () => {
    const mailbox = fakeMailbox(30, 1);
    const batches = [];
    for await (const batch of scanRuleMatches(mailbox.em, 'account', toRule, now, { batchSize: 10, maxMessages: 25 })) batches.push(batch);
    expect(batches.map((b) => b.scanned)).toEqual([10, 10, 5]);
    expect(batches.map((b) => b.stoppedBy)).toEqual([null, null, 'MESSAGES']);
    expect(mailbox.queries).toBe(3);
  });

  it('is not partial when the cap is exactly the number of messages', async () => {
    const batches = [];
    for await (const batch of scanRuleMatches(fakeMailbox(20, 1).em, 'account', toRule, now, { batchSize: 10, maxMessages: 20 })) {
      batches.push(batch);
    }
    expect(batches.map((b) => [b.scanned, b.stoppedBy])).toEqual([
      [10, null],
      [10, null],
    ]);
  });

  it('charges every message to the budget and stops before one it cannot afford', async () => {
    const budget = new RuleTestBudget(1_000);
    const batches = [];
    // 200 recipients: 200 tests a message, so the budget affords five.
    for await (const batch of scanRuleMatches(fakeMailbox(50, 200).em, 'account', toRule, now, { budget })) batches.push(batch);
    expect(batches).toEqual([{ scanned: 5, matchedIds: [], tests: 1_000, stoppedBy: 'TESTS' }]);
    expect(budget.spent).toBe(1_000);
  });

  it('pauses for the event loop within a costly batch, and a throw at a pause ends the scan before the batch is yielded', async () => {
    let pauses = 0;
    const cancelled = new Error('cancelled');
    const mailbox = fakeMailbox(500, 200);
    const scan = scanRuleMatches(mailbox.em, 'account', toRule, now, {
      onPause: () => {
        pauses++;
        if (pauses === 2) throw cancelled;
      },
    });
    const yielded: number[] = [];
    await expect(
      (async () => {
        for await (const batch of scan) yielded.push(batch.scanned);
      })(),
    ).rejects.toBe(cancelled);
    // Pauses come every RULE_SCAN_PAUSE_EVERY_TESTS tests (25 messages here), inside the first batch of 500.
    expect(RULE_SCAN_PAUSE_EVERY_TESTS / 200).toBe(25);
    expect(mailbox.queries).toBe(1);
    expect(yielded).toEqual([]);
  });
});
