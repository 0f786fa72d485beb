import { getHeader, normalizeSender, type ScannableMessage } from './scannable-message.js';

/** What a message's `List-Unsubscribe` headers offer. */
export interface ListUnsubscribe {
  /** http(s) URLs, in header order, without duplicates. */
  urls: string[];
  /** `mailto:` URIs, in header order, without duplicates. */
  mailtos: string[];
  /**
   * RFC 8058 one-click: true only when there is an https URL and `List-Unsubscribe-Post` is exactly
   * `List-Unsubscribe=One-Click`.
   */
  oneClick: boolean;
}

/** One sender's newsletters, as found by {@link groupNewsletters}. */
export interface NewsletterGroup {
  /** Lowercased sender address. */
  sender: string;
  /** Messages from this sender that carry a usable `List-Unsubscribe` header. */
  messageCount: number;
  /** Date of the newest of those messages; null when none has a date. */
  lastSeen: Date | null;
  /** Union of the http(s) URLs, newest message first. */
  unsubscribeUrls: string[];
  /** Union of the `mailto:` URIs, newest message first. */
  mailtos: string[];
  /** True when {@link oneClickUrl} is set. */
  oneClick: boolean;
  /**
   * The https URL to POST `List-Unsubscribe=One-Click` to: the first https URL of the newest
   * message that offers one-click. Null when no message does.
   */
  oneClickUrl: string | null;
}

const ONE_CLICK_VALUE = 'List-Unsubscribe=One-Click';

/**
 * Splits a `List-Unsubscribe` value into its URIs. RFC 2369 wants each in angle brackets and says
 * whitespace inside them is to be ignored (folding); bare comma-separated URIs are accepted too,
 * since some senders omit the brackets.
 */
function splitEntries(value: string): string[] {
  const bracketed = [...value.matchAll(/<([^<>]*)>/g)].map((m) => (m[1] ?? '').replace(/\s+/g, ''));
  if (bracketed.length > 0) return bracketed;
  return value.split(',').map((part) => part.trim());
}

/**
 * Parses the `List-Unsubscribe` and `List-Unsubscribe-Post` headers (names looked up lowercased).
 * Returns null when there is no `List-Unsubscribe` header or it holds no usable http(s) or mailto
 * URI; other schemes (e.g. `javascript:`) are dropped.
 */
export function parseListUnsubscribe(headers: Record<string, string>): ListUnsubscribe | null {
  const value = getHeader(headers, 'list-unsubscribe');
  if (value === null) return null;
  const urls: string[] = [];
  const mailtos: string[] = [];
  for (const entry of splitEntries(value)) {
    if (/^mailto:/i.test(entry)) {
      // A bare "mailto:" has no address to write to.
      if (entry.length > 'mailto:'.length && !mailtos.includes(entry)) mailtos.push(entry);
      continue;
    }
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      continue;
    }
    if ((url.protocol === 'https:' || url.protocol === 'http:') && !urls.includes(entry)) urls.push(entry);
  }
  if (urls.length === 0 && mailtos.length === 0) return null;
  const post = getHeader(headers, 'list-unsubscribe-post');
  // RFC 8058 forbids one-click over plain http: the POST would carry the opt-out token in clear.
  const hasHttps = urls.some((u) => /^https:/i.test(u));
  return { urls, mailtos, oneClick: hasHttps && post !== null && post.trim() === ONE_CLICK_VALUE };
}

function pushUnique(target: string[], values: readonly string[]): void {
  for (const value of values) if (!target.includes(value)) target.push(value);
}

/**
 * Groups newsletter messages by lowercased sender address. Messages without a usable
 * `List-Unsubscribe` header or without a sender are left out. Groups come sorted by message count
 * (highest first), then by sender.
 */
export function groupNewsletters(messages: readonly ScannableMessage[]): NewsletterGroup[] {
  const found: { sender: string; date: Date | null; info: ListUnsubscribe }[] = [];
  for (const message of messages) {
    const sender = normalizeSender(message.from);
    if (sender === null) continue;
    const info = parseListUnsubscribe(message.headers);
    if (info !== null) found.push({ sender, date: message.date, info });
  }
  // Newest first, so the newest (most likely still valid) URLs lead each list; undated go last.
  const time = (d: Date | null): number => (d === null || Number.isNaN(d.getTime()) ? -Infinity : d.getTime());
  found.sort((a, b) => time(b.date) - time(a.date) || 0); // `|| 0`: two undated give NaN

  const groups = new Map<string, NewsletterGroup>();
  for (const { sender, date, info } of found) {
    let group = groups.get(sender);
    if (group === undefined) {
      group = { sender, messageCount: 0, lastSeen: null, unsubscribeUrls: [], mailtos: [], oneClick: false, oneClickUrl: null };
      groups.set(sender, group);
    }
    group.messageCount += 1;
    if (group.lastSeen === null && time(date) !== -Infinity) group.lastSeen = date;
    pushUnique(group.unsubscribeUrls, info.urls);
    pushUnique(group.mailtos, info.mailtos);
    if (info.oneClick && group.oneClickUrl === null) {
      group.oneClickUrl = info.urls.find((u) => /^https:/i.test(u)) ?? null;
      group.oneClick = group.oneClickUrl !== null;
    }
  }
  return [...groups.values()].sort((a, b) => b.messageCount - a.messageCount || a.sender.localeCompare(b.sender));
}
