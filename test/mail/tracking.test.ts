import { describe, expect, it } from 'vitest';
import type { ScannableMessage } from '../../src/mail/scanners/scannable-message.js';
import { matchTrackerHost, TRACKER_HOSTS } from '../../src/mail/scanners/tracker-hosts.js';
import { scanTracking, summarizeTrackingBySender, type TrackingFinding } from '../../src/mail/scanners/tracking.js';

function html(body: string): ScannableMessage {
  return { id: 'm', from: 'news@shop.example', subject: null, date: null, headers: {}, textBody: null, htmlBody: body };
}

describe('tracker host list', () => {
  it('matches a listed domain and any subdomain, not look-alikes', () => {
    expect(matchTrackerHost('list-manage.com')?.vendor).toBe('Mailchimp');
    expect(matchTrackerHost('Shop.US12.List-Manage.com.')?.domain).toBe('list-manage.com');
    expect(matchTrackerHost('u1234567.ct.sendgrid.net')?.domain).toBe('ct.sendgrid.net');
    expect(matchTrackerHost('notlist-manage.com')).toBeNull();
    expect(matchTrackerHost('list-manage.com.evil.example')).toBeNull();
    expect(matchTrackerHost('sendgrid.net')).toBeNull();
  });

  it('ships 20 to 40 distinct lowercase domains', () => {
    const domains = TRACKER_HOSTS.map((h) => h.domain);
    expect(domains.length).toBeGreaterThanOrEqual(20);
    expect(domains.length).toBeLessThanOrEqual(40);
    expect(new Set(domains).size).toBe(domains.length);
    for (const domain of domains) expect(domain).toBe(domain.toLowerCase());
  });
});

describe('scanTracking', () => {
  it('returns nothing without an HTML body', () => {
    expect(scanTracking({ ...html(''), htmlBody: null })).toEqual([]);
  });

  it('flags 1x1 and hidden images but not normal ones', () => {
    const findings = scanTracking(
      html(`
        <img src="https://cdn.shop.example/logo.png" width="600" height="120" alt="Shop">
        <IMG SRC='https://cdn.shop.example/hero.jpg' STYLE='width:100%;height:auto'>
        <img width=1 height=1 src=https://open.shop.example/o.gif?u=abc123/>
        <img src="https://stats.shop.example/p.png?id=9" style="width: 2px; height: 0px !important">
        <img src="https://stats.shop.example/hidden.png" style="display:none">
        <img src="https://stats.shop.example/invisible.png" style="visibility: hidden">
        <img src="https://stats.shop.example/clear.png" style="opacity:0.0">
        <img src="https://stats.shop.example/wide.png" width="1" height="50">
        <img src="cid:logo@shop" width="1" height="1">
        <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" width="1" height="1">
      `),
    );
    expect(findings).toEqual<TrackingFinding[]>([
      { kind: 'PIXEL', detail: 'https://open.shop.example/o.gif', host: 'open.shop.example' },
      { kind: 'PIXEL', detail: 'https://stats.shop.example/p.png', host: 'stats.shop.example' },
      { kind: 'PIXEL', detail: 'https://stats.shop.example/hidden.png', host: 'stats.shop.example' },
      { kind: 'PIXEL', detail: 'https://stats.shop.example/invisible.png', host: 'stats.shop.example' },
      { kind: 'PIXEL', detail: 'https://stats.shop.example/clear.png', host: 'stats.shop.example' },
    ]);
  });

  it('lets CSS size override the width/height attributes', () => {
    expect(scanTracking(html('<img src="https://a.example/big.png" width="1" height="1" style="width:300px;height:200px">'))).toEqual([]);
    expect(scanTracking(html('<img src="https://a.example/t.png" width="300" height="200" style="width:1px;height:1px">'))).toEqual([
      { kind: 'PIXEL', detail: 'https://a.example/t.png', host: 'a.example' },
    ]);
  });

  it('flags tracker hosts through subdomains, on images and links', () => {
    const findings = scanTracking(
      html(`
        <img src="https://shop.us12.list-manage.com/track/open.php?u=1&id=2" width="1" height="1">
        <a href="https://u1234567.ct.sendgrid.net/ls/click?upn=xyz">Shop now</a>
        <a href="https://www.shop.example/sale">Sale</a>
        <a href="https://t.co/abc">tweet</a>
      `),
    );
    expect(findings).toEqual<TrackingFinding[]>([
      { kind: 'PIXEL', detail: 'https://shop.us12.list-manage.com/track/open.php', host: 'shop.us12.list-manage.com' },
      { kind: 'TRACKER_HOST', detail: 'list-manage.com', host: 'shop.us12.list-manage.com' },
      { kind: 'TRACKER_HOST', detail: 'ct.sendgrid.net', host: 'u1234567.ct.sendgrid.net' },
    ]);
  });

  it('flags tracking parameters on links, once per parameter, with entity-encoded ampersands', () => {
    const findings = scanTracking(
      html(`
        <a href="https://www.shop.example/sale?utm_source=newsletter&amp;utm_medium=email&amp;color=red">Sale</a>
        <A HREF='https://blog.example/post?UTM_SOURCE=x&mc_eid=abc123&_hsenc=p2&page=2'>Post</A>
        <a href=https://other.example/?fbclid=IwAR0&gclid=Cj0>Ad</a>
        <a href="https://www.shop.example/plain?utm=1&ref=home">Plain</a>
        <img src="https://cdn.shop.example/banner.png?utm_source=img" width="600" height="200">
      `),
    );
    expect(findings).toEqual<TrackingFinding[]>([
      { kind: 'LINK_PARAM', detail: 'utm_source', host: 'www.shop.example' },
      { kind: 'LINK_PARAM', detail: 'utm_medium', host: 'www.shop.example' },
      { kind: 'LINK_PARAM', detail: 'mc_eid', host: 'blog.example' },
      { kind: 'LINK_PARAM', detail: '_hsenc', host: 'blog.example' },
      { kind: 'LINK_PARAM', detail: 'fbclid', host: 'other.example' },
      { kind: 'LINK_PARAM', detail: 'gclid', host: 'other.example' },
    ]);
  });

  it('reports a tracker domain once per message however often it appears', () => {
    const link = '<a href="https://click.mandrillapp.com/track/click/1?u=2">x</a>';
    expect(scanTracking(html(link + link + link))).toEqual([
      { kind: 'TRACKER_HOST', detail: 'mandrillapp.com', host: 'click.mandrillapp.com' },
    ]);
  });

  it('does not mistake other tags or text for images and links', () => {
    const findings = scanTracking(
      html(`
        <abbr title="x">a</abbr>
        <area href="https://x.list-manage.com/">
        <p>Visit https://www.shop.example/?utm_source=text or see &lt;img src="https://x.list-manage.com/o.gif" width=1 height=1&gt;</p>
        <a title='a > b' href="https://www.shop.example/?utm_campaign=spring">quoted gt</a>
      `),
    );
    expect(findings).toEqual([{ kind: 'LINK_PARAM', detail: 'utm_campaign', host: 'www.shop.example' }]);
  });
});

describe('scanTracking on hostile HTML', () => {
  // Single-quoted, so the unclosed double quotes before it cannot pair with its quotes.
  const tracked =
    "<img src='https://open.shop.example/o.gif?u=1' width=1 height=1><a href='https://www.shop.example/?utm_source=news'>Sale</a>";
  const expected: TrackingFinding[] = [
    { kind: 'PIXEL', detail: 'https://open.shop.example/o.gif', host: 'open.shop.example' },
    { kind: 'LINK_PARAM', detail: 'utm_source', host: 'www.shop.example' },
  ];

  it('scans megabytes of unclosed tags and still finds the tracking after them', () => {
    // The `>` closes the last few of them, as one tag, before the real ones start.
    expect(scanTracking(html(`${'<a '.repeat(800_000)}>${tracked}`))).toEqual(expected);
    expect(scanTracking(html(`${'<img '.repeat(500_000)}>${tracked}`))).toEqual(expected);
  });

  it('scans megabytes of quotes that are never closed and still finds the tracking after them', () => {
    expect(scanTracking(html(`${'<a "'.padEnd(1_000_000, 'x').repeat(3)}${tracked}`))).toEqual(expected);
  });
});

describe('summarizeTrackingBySender', () => {
  it('totals findings per lowercased sender and skips senders without any', () => {
    const pixel: TrackingFinding = { kind: 'PIXEL', detail: 'https://a.example/p.gif', host: 'a.example' };
    const summary = summarizeTrackingBySender([
      { from: 'News@A.example', findings: [pixel, { kind: 'TRACKER_HOST', detail: 'list-manage.com', host: 'x.list-manage.com' }] },
      { from: 'news@a.example', findings: [pixel, { kind: 'LINK_PARAM', detail: 'utm_source', host: 'a.example' }] },
      { from: 'news@a.example', findings: [] },
      {
        from: 'b@b.example',
        findings: [
          { kind: 'LINK_PARAM', detail: 'gclid', host: 'b.example' },
          { kind: 'LINK_PARAM', detail: 'fbclid', host: 'b.example' },
        ],
      },
      { from: 'clean@c.example', findings: [] },
      { from: null, findings: [pixel] },
    ]);
    expect(summary).toEqual([
      {
        sender: 'news@a.example',
        messageCount: 3,
        trackedMessageCount: 2,
        pixelCount: 2,
        trackerHosts: ['list-manage.com'],
        linkParams: ['utm_source'],
      },
      { sender: 'b@b.example', messageCount: 1, trackedMessageCount: 1, pixelCount: 0, trackerHosts: [], linkParams: ['fbclid', 'gclid'] },
    ]);
  });
});
