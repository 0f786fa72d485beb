import { describe, expect, it } from 'vitest';
import type { ScannableMessage } from '../../src/mail/scanners/scannable-message.js';
import { groupNewsletters, parseListUnsubscribe } from '../../src/mail/scanners/unsubscribe.js';

function message(overrides: Partial<ScannableMessage>): ScannableMessage {
  return { id: 'm', from: null, subject: null, date: null, headers: {}, textBody: null, htmlBody: null, ...overrides };
}

describe('parseListUnsubscribe', () => {
  it('returns null without a List-Unsubscribe header', () => {
    expect(parseListUnsubscribe({ subject: 'hi' })).toBeNull();
  });

  it('splits bracketed URLs and mailtos, dropping other schemes and duplicates', () => {
    const parsed = parseListUnsubscribe({
      'list-unsubscribe':
        '<mailto:leave@news.example.com?subject=unsubscribe>, <https://news.example.com/u?id=42>,\r\n <http://old.example.com/u>, <javascript:alert(1)>, <https://news.example.com/u?id=42>',
    });
    expect(parsed).toEqual({
      urls: ['https://news.example.com/u?id=42', 'http://old.example.com/u'],
      mailtos: ['mailto:leave@news.example.com?subject=unsubscribe'],
      oneClick: false,
    });
  });

  it('removes folding whitespace inside the brackets (RFC 2369)', () => {
    expect(parseListUnsubscribe({ 'list-unsubscribe': '<https://news.example.com/\r\n  unsubscribe/42>' })?.urls).toEqual([
      'https://news.example.com/unsubscribe/42',
    ]);
  });

  it('accepts entries without angle brackets', () => {
    expect(parseListUnsubscribe({ 'list-unsubscribe': 'https://a.example/u, mailto:u@a.example' })).toEqual({
      urls: ['https://a.example/u'],
      mailtos: ['mailto:u@a.example'],
      oneClick: false,
    });
  });

  it('returns null when no entry is usable', () => {
    expect(parseListUnsubscribe({ 'list-unsubscribe': '<javascript:void(0)>, <not a url>' })).toBeNull();
  });

  it('flags one-click only with an https URL and the exact List-Unsubscribe-Post value', () => {
    const https = '<https://news.example.com/one-click/abc>';
    const post = 'List-Unsubscribe=One-Click';
    expect(parseListUnsubscribe({ 'list-unsubscribe': https, 'list-unsubscribe-post': post })?.oneClick).toBe(true);
    // Either header alone is not enough.
    expect(parseListUnsubscribe({ 'list-unsubscribe': https })?.oneClick).toBe(false);
    expect(parseListUnsubscribe({ 'list-unsubscribe': '<mailto:u@example.com>', 'list-unsubscribe-post': post })?.oneClick).toBe(false);
    // Plain http does not qualify (RFC 8058 requires https).
    expect(parseListUnsubscribe({ 'list-unsubscribe': '<http://news.example.com/u>', 'list-unsubscribe-post': post })?.oneClick).toBe(
      false,
    );
    // Any other Post value does not qualify.
    expect(parseListUnsubscribe({ 'list-unsubscribe': https, 'list-unsubscribe-post': 'List-Unsubscribe=Yes' })?.oneClick).toBe(false);
  });
});

describe('groupNewsletters', () => {
  const post = { 'list-unsubscribe-post': 'List-Unsubscribe=One-Click' };

  it('groups by lowercased sender with counts, last date, merged links and one-click', () => {
    const groups = groupNewsletters([
      message({
        id: '1',
        from: 'News@Shop.example',
        date: new Date('2024-01-01T00:00:00Z'),
        headers: { 'list-unsubscribe': '<https://shop.example/u/old>, <mailto:out@shop.example>' },
      }),
      message({
        id: '2',
        from: 'news@shop.example',
        date: new Date('2024-03-01T00:00:00Z'),
        headers: { 'list-unsubscribe': '<https://shop.example/u/new>', ...post },
      }),
      message({
        id: '3',
        from: 'digest@blog.example',
        date: new Date('2024-02-01T00:00:00Z'),
        headers: { 'list-unsubscribe': '<mailto:leave@blog.example>' },
      }),
      // Not a newsletter: no header.
      message({ id: '4', from: 'friend@example.org', date: new Date('2024-02-02T00:00:00Z') }),
      // No sender to group by.
      message({ id: '5', from: null, headers: { 'list-unsubscribe': '<https://x.example/u>' } }),
    ]);
    expect(groups).toEqual([
      {
        sender: 'news@shop.example',
        messageCount: 2,
        lastSeen: new Date('2024-03-01T00:00:00Z'),
        unsubscribeUrls: ['https://shop.example/u/new', 'https://shop.example/u/old'],
        mailtos: ['mailto:out@shop.example'],
        oneClick: true,
        oneClickUrl: 'https://shop.example/u/new',
      },
      {
        sender: 'digest@blog.example',
        messageCount: 1,
        lastSeen: new Date('2024-02-01T00:00:00Z'),
        unsubscribeUrls: [],
        mailtos: ['mailto:leave@blog.example'],
        oneClick: false,
        oneClickUrl: null,
      },
    ]);
  });

  it('keeps lastSeen null when no message is dated', () => {
    const [group] = groupNewsletters([message({ from: 'a@b.example', headers: { 'list-unsubscribe': '<https://b.example/u>' } })]);
    expect(group?.lastSeen).toBeNull();
    expect(group?.messageCount).toBe(1);
  });
});
