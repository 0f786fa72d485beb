import { callerOf } from '../../auth/access.js';
import type { Account } from '../../db/entities/account.entity.js';
import type { Finding, Newsletter } from '../../db/entities/finding.entity.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { SCAN_KINDS } from '../../jobs/scan-support.js';
import { listFindings, listNewsletters, summarizeStoredTracking } from '../../mail/finding-store.js';
import type { TrackingSenderSummary } from '../../mail/scanners/tracking.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { decodeCursor, keysetConnection, pageSize, toPage } from '../pagination.js';

const FINDING_KINDS = ['PIXEL', 'TRACKER_HOST', 'LINK_PARAM', 'CARD', 'IBAN', 'PHONE', 'NATIONAL_ID'] as const;

const ScanKindRef = builder.enumType('ScanKind', {
  description: 'The privacy scan that produced a finding.',
  values: Object.fromEntries(
    SCAN_KINDS.map((value) => [value, { value, description: value === 'TRACKING' ? 'From `scanTracking`.' : 'From `scanPii`.' }]),
  ) as Record<(typeof SCAN_KINDS)[number], { value: (typeof SCAN_KINDS)[number]; description: string }>,
});

const FINDING_KIND_DESCRIPTIONS: Record<(typeof FINDING_KINDS)[number], string> = {
  PIXEL: 'TRACKING: a remote image of at most 2×2 pixels or hidden by CSS; `detail` is its URL without query or fragment.',
  TRACKER_HOST: 'TRACKING: an image or link served by a known tracker; `detail` is the listed domain, `host` the actual host.',
  LINK_PARAM: 'TRACKING: a tracking query parameter on a link (`utm_*`, `mc_eid`, ...); `detail` is its name.',
  CARD: 'PII: a payment card number passing its scheme prefix and Luhn; `subtype` is the scheme.',
  IBAN: 'PII: an IBAN passing its country length and mod 97; `subtype` is the country.',
  PHONE: 'PII: a phone number; `subtype` is INTERNATIONAL or NATIONAL.',
  NATIONAL_ID: 'PII: a national id number; `subtype` is US_SSN, FR_NIR or UK_NINO.',
};

const FindingKindRef = builder.enumType('FindingKind', {
  values: Object.fromEntries(FINDING_KINDS.map((value) => [value, { value, description: FINDING_KIND_DESCRIPTIONS[value] }])) as Record<
    (typeof FINDING_KINDS)[number],
    { value: (typeof FINDING_KINDS)[number]; description: string }
  >,
});

export const NewsletterRef = builder.objectRef<Newsletter>('Newsletter').implement({
  description: 'A sender found to send newsletters, from the List-Unsubscribe headers of its messages (see `scanUnsubscribe`).',
  fields: (t) => ({
    id: t.exposeID('id'),
    accountId: t.exposeID('accountId'),
    sender: t.exposeString('sender', { description: 'Lowercased sender address.' }),
    messageCount: t.exposeInt('messageCount', { description: 'Messages from this sender with a usable List-Unsubscribe header.' }),
    lastSeen: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Date of the newest of those messages.',
      resolve: (n) => n.lastSeen,
    }),
    unsubscribeUrls: t.exposeStringList('unsubscribeUrls', { description: 'http(s) unsubscribe URLs, newest message first.' }),
    mailtos: t.exposeStringList('mailtos', { description: '`mailto:` unsubscribe URIs, newest message first.' }),
    oneClick: t.exposeBoolean('oneClick', { description: 'True when the sender offers RFC 8058 one-click unsubscribe.' }),
    oneClickUrl: t.exposeString('oneClickUrl', {
      nullable: true,
      description: 'The https URL to POST `List-Unsubscribe=One-Click` to; null without one-click.',
    }),
    updatedAt: t.field({ type: 'DateTime', description: 'When the scan that found this last ran.', resolve: (n) => n.updatedAt }),
  }),
});

export const FindingRef = builder.objectRef<Finding>('Finding').implement({
  description: 'One thing a privacy scan found in one message. PII findings hold a masked excerpt only, never the raw value.',
  fields: (t) => ({
    id: t.exposeID('id'),
    messageId: t.exposeID('messageId'),
    scan: t.field({ type: ScanKindRef, resolve: (f) => f.scan as (typeof SCAN_KINDS)[number] }),
    kind: t.field({ type: FindingKindRef, resolve: (f) => f.kind as (typeof FINDING_KINDS)[number] }),
    subtype: t.exposeString('subtype', { nullable: true, description: 'Card scheme, IBAN country, phone or national id type (PII only).' }),
    detail: t.exposeString('detail', {
      description: 'TRACKING: URL, tracker domain or parameter name. PII: the value with all but its last four letters/digits masked.',
    }),
    host: t.exposeString('host', { nullable: true, description: 'Host of the URL (TRACKING only).' }),
    source: t.exposeString('source', { description: 'Where in the message: `text`, `html` or `attachment:<filename>`.' }),
    sender: t.exposeString('sender', { nullable: true, description: "The message's lowercased sender address." }),
    createdAt: t.field({ type: 'DateTime', description: 'When a scan first found it.', resolve: (f) => f.createdAt }),
  }),
});

const FindingConnectionRef = keysetConnection<Finding>('Finding', FindingRef);

const TrackingSenderSummaryRef = builder.objectRef<TrackingSenderSummary>('TrackingSenderSummary').implement({
  description: "One sender's tracking, from the stored TRACKING findings (see `scanTracking`).",
  fields: (t) => ({
    sender: t.exposeString('sender', { description: 'Lowercased sender address.' }),
    messageCount: t.exposeInt('messageCount', { description: "The sender's non-trashed messages in the account." }),
    trackedMessageCount: t.exposeInt('trackedMessageCount', { description: 'Of those, messages with at least one finding.' }),
    pixelCount: t.exposeInt('pixelCount', { description: 'Tracking pixels over all of those messages.' }),
    trackerHosts: t.exposeStringList('trackerHosts', { description: 'Distinct tracker domains seen, sorted.' }),
    linkParams: t.exposeStringList('linkParams', { description: 'Distinct tracking link parameters seen, sorted.' }),
  }),
});

/** The account if the caller owns it (or is an admin); anyone else's looks missing: NOT_FOUND. */
function visibleAccount(ctx: GraphQLContext, accountId: string | number): Promise<Account> {
  return loadOwnedAccount(ctx.em, String(accountId), callerOf(ctx.viewer));
}

builder.queryFields((t) => ({
  newsletters: t.field({
    type: [NewsletterRef],
    description: "The account's newsletter senders as found by the last `scanUnsubscribe`, most messages first.",
    args: { accountId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const account = await visibleAccount(ctx, args.accountId);
      return listNewsletters(ctx.em, account.id);
    },
  }),
  findings: t.field({
    type: FindingConnectionRef,
    description: "The account's stored privacy scan findings of messages that still exist, newest first.",
    args: {
      accountId: t.arg.id({ required: true }),
      kind: t.arg({ type: FindingKindRef, required: false }),
      scan: t.arg({ type: ScanKindRef, required: false }),
      first: t.arg.int({ required: false, defaultValue: 50 }),
      after: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const size = pageSize(args.first);
      const account = await visibleAccount(ctx, args.accountId);
      const after = args.after ? decodeCursor(args.after) : null;
      const rows = await listFindings(ctx.em, { accountId: account.id, scan: args.scan, kind: args.kind, after, limit: size + 1 });
      return toPage(rows, size, (row) => row.node, args.after);
    },
  }),
  trackingSummary: t.field({
    type: [TrackingSenderSummaryRef],
    description:
      'Tracking per sender from the stored TRACKING findings (see `scanTracking`), over the non-trashed messages; senders without any finding are left out. Most tracked messages first.',
    args: { accountId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const account = await visibleAccount(ctx, args.accountId);
      return summarizeStoredTracking(ctx.em, account.id);
    },
  }),
}));
