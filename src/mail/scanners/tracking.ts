import { decodeHtmlEntities } from './html-to-text.js';
import { findTags, startTagOpener } from './html-tags.js';
import { normalizeSender, type ScannableMessage } from './scannable-message.js';
import { matchTrackerHost } from './tracker-hosts.js';

/** Kind of a {@link TrackingFinding}. */
export type TrackingKind = 'PIXEL' | 'TRACKER_HOST' | 'LINK_PARAM';

/**
 * One tracking device in a message's HTML body.
 * - `PIXEL`: a remote image of at most 2×2 pixels or hidden by CSS; `detail` is its URL without
 *   query or fragment (those carry the per-recipient token); `host` its host.
 * - `TRACKER_HOST`: an image or link served by a listed tracker; `detail` is the listed domain
 *   (see `tracker-hosts.ts`), `host` the actual host.
 * - `LINK_PARAM`: a tracking query parameter on a link; `detail` is the parameter name,
 *   lowercased; `host` the link's host.
 */
export interface TrackingFinding {
  kind: TrackingKind;
  detail: string;
  host: string | null;
}

/** Per-sender totals from {@link summarizeTrackingBySender}. */
export interface TrackingSenderSummary {
  /** Lowercased sender address. */
  sender: string;
  /** Messages from this sender in the input. */
  messageCount: number;
  /** Of those, messages with at least one finding. */
  trackedMessageCount: number;
  /** PIXEL findings over all of the sender's messages. */
  pixelCount: number;
  /** Distinct tracker domains seen, sorted. */
  trackerHosts: string[];
  /** Distinct tracking link parameters seen, sorted. */
  linkParams: string[];
}

/** Exact parameter names (lowercased) that identify a recipient or a campaign click. */
const TRACKING_PARAMS = new Set([
  'mc_eid', // Mailchimp subscriber id
  'mc_cid', // Mailchimp campaign id
  '_hsenc', // HubSpot
  '_hsmi',
  '__hstc',
  '__hssc',
  '__hsfp',
  'hsctatracking',
  'mkt_tok', // Marketo
  'fbclid', // Meta
  'gclid', // Google Ads
  'dclid',
  'gbraid',
  'wbraid',
  'msclkid', // Microsoft Ads
  'yclid', // Yandex
  'igshid', // Instagram
  'twclid', // X/Twitter Ads
  'ttclid', // TikTok
  'li_fat_id', // LinkedIn
  'vero_id', // Vero
  'vero_conv',
  'oly_enc_id', // Omeda
  'oly_anon_id',
  'ck_subscriber_id', // ConvertKit
  '_kx', // Klaviyo
  'sc_cid', // Snapchat
  'ml_subscriber', // MailerLite
  'ml_subscriber_hash',
  'ecid', // Adobe
  's_cid',
]);

/** Prefixes (lowercased) of tracking parameter families. */
const TRACKING_PARAM_PREFIXES = ['utm_'];

function isTrackingParam(name: string): boolean {
  const lower = name.toLowerCase();
  return TRACKING_PARAMS.has(lower) || TRACKING_PARAM_PREFIXES.some((p) => lower.startsWith(p) && lower.length > p.length);
}

/** Characters or quoted strings an `<img>` or `<a>` start tag may hold; a longer one is text. */
const MAX_TAG_UNITS = 8000;

const IMAGE_OR_LINK = startTagOpener(['img', 'a']);
/** One attribute: name, then an optional double-quoted, single-quoted or unquoted value. */
const ATTRIBUTE = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;

/** Parses a tag's attribute text; names are lowercased, values entity-decoded, first one wins. */
function parseAttributes(source: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const m of source.matchAll(ATTRIBUTE)) {
    const name = (m[1] ?? '').toLowerCase();
    if (name === '' || attributes.has(name)) continue;
    attributes.set(name, decodeHtmlEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return attributes;
}

/** Parses inline CSS declarations into a property → value map (last one wins, like CSS). */
function parseStyle(style: string): Map<string, string> {
  const declarations = new Map<string, string>();
  for (const part of style.split(';')) {
    const colon = part.indexOf(':');
    if (colon === -1) continue;
    const property = part.slice(0, colon).trim().toLowerCase();
    const value = part
      .slice(colon + 1)
      .replace(/!\s*important/i, '')
      .trim()
      .toLowerCase();
    if (property !== '') declarations.set(property, value);
  }
  return declarations;
}

/** CSS length in pixels: `1px`, `1.0px` or a bare number; null for %, `auto`, em and the like. */
function parseCssLength(value: string | undefined): number | null {
  if (value === undefined) return null;
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:px)?\s*$/i.exec(value);
  return m ? Number(m[1]) : null;
}

/**
 * `width`/`height` attribute in pixels. Like browsers, reads the leading number and ignores what
 * follows (`1px`, or the `/` of an unquoted `height=1/>`); a percentage is not a pixel size.
 */
function parseAttributeLength(value: string | undefined): number | null {
  if (value === undefined) return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%)?/.exec(value);
  return m && m[2] === undefined ? Number(m[1]) : null;
}

/** Absolute http(s) URL of an attribute value (protocol-relative counts as https), else null. */
function parseRemoteUrl(value: string | undefined): URL | null {
  if (value === undefined) return null;
  const trimmed = value.trim();
  try {
    const url = new URL(trimmed.startsWith('//') ? `https:${trimmed}` : trimmed);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

function isHiddenOrTiny(attributes: Map<string, string>): boolean {
  const style = parseStyle(attributes.get('style') ?? '');
  if (attributes.has('hidden')) return true;
  if (style.get('display') === 'none' || style.get('visibility') === 'hidden') return true;
  const opacity = style.get('opacity');
  if (opacity !== undefined && Number.parseFloat(opacity) === 0) return true;
  // CSS beats the presentational attributes, as it does when the mail is rendered.
  const width = style.has('width') ? parseCssLength(style.get('width')) : parseAttributeLength(attributes.get('width'));
  const height = style.has('height') ? parseCssLength(style.get('height')) : parseAttributeLength(attributes.get('height'));
  return width !== null && height !== null && width <= 2 && height <= 2;
}

function hostOf(url: URL): string {
  return url.hostname.toLowerCase().replace(/\.$/, '');
}

/**
 * Finds tracking pixels, tracker hosts and tracking link parameters in a message's HTML body.
 * Only `<img src>` and `<a href>` are looked at, and only absolute http(s) URLs: a `cid:` or
 * `data:` image cannot report back. One finding per distinct (kind, detail), in document order.
 */
export function scanTracking(message: ScannableMessage): TrackingFinding[] {
  const html = message.htmlBody;
  if (html === null || html === '') return [];
  const findings: TrackingFinding[] = [];
  const seen = new Set<string>();
  const add = (kind: TrackingKind, detail: string, host: string | null): void => {
    const key = `${kind}\u0000${detail}`;
    if (seen.has(key)) return;
    seen.add(key);
    findings.push({ kind, detail, host });
  };

  for (const tag of findTags(html, { openAt: IMAGE_OR_LINK, maxUnits: MAX_TAG_UNITS })) {
    const name = html.slice(tag.start + 1, tag.nameEnd).toLowerCase();
    const attributes = parseAttributes(html.slice(tag.nameEnd, tag.end - 1));
    const url = parseRemoteUrl(attributes.get(name === 'img' ? 'src' : 'href'));
    if (url === null) continue;
    const host = hostOf(url);
    if (name === 'img' && isHiddenOrTiny(attributes)) add('PIXEL', `${url.protocol}//${url.host}${url.pathname}`, host);
    const tracker = matchTrackerHost(host);
    if (tracker !== null) add('TRACKER_HOST', tracker.domain, host);
    if (name === 'a') {
      for (const param of url.searchParams.keys()) {
        if (isTrackingParam(param)) add('LINK_PARAM', param.toLowerCase(), host);
      }
    }
  }
  return findings;
}

/**
 * Totals tracking findings per lowercased sender. Messages without a sender are left out, and so
 * are senders none of whose messages had a finding. Sorted by tracked message count (highest
 * first), then by sender.
 */
export function summarizeTrackingBySender(
  results: readonly { from: string | null; findings: readonly TrackingFinding[] }[],
): TrackingSenderSummary[] {
  const bySender = new Map<string, { summary: TrackingSenderSummary; hosts: Set<string>; params: Set<string> }>();
  for (const { from, findings } of results) {
    const sender = normalizeSender(from);
    if (sender === null) continue;
    let entry = bySender.get(sender);
    if (entry === undefined) {
      entry = {
        summary: { sender, messageCount: 0, trackedMessageCount: 0, pixelCount: 0, trackerHosts: [], linkParams: [] },
        hosts: new Set(),
        params: new Set(),
      };
      bySender.set(sender, entry);
    }
    entry.summary.messageCount += 1;
    if (findings.length > 0) entry.summary.trackedMessageCount += 1;
    for (const finding of findings) {
      if (finding.kind === 'PIXEL') entry.summary.pixelCount += 1;
      else if (finding.kind === 'TRACKER_HOST') entry.hosts.add(finding.detail);
      else entry.params.add(finding.detail);
    }
  }
  return [...bySender.values()]
    .filter((e) => e.summary.trackedMessageCount > 0)
    .map((e) => ({ ...e.summary, trackerHosts: [...e.hosts].sort(), linkParams: [...e.params].sort() }))
    .sort((a, b) => b.trackedMessageCount - a.trackedMessageCount || a.sender.localeCompare(b.sender));
}
