import type { Account } from '../../db/entities/account.entity.js';
import type { Finding, Newsletter } from '../../db/entities/finding.entity.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { SCAN_KINDS } from '../../jobs/scan-support.js';
import type { TrackingSenderSummary } from '../../mail/scanners/tracking.js';
import { builder } from '../builder.js';
import type { GraphQLContext } from '../context.js';
import { decodeCursor, pageSize, toPage } from '../pagination.js';
import { PageInfoRef } from './scalars.js';
import { isAdmin } from './job.js';

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
    lastSeen: t.field({ type: 'DateTime', nullable: true, description: 'Date of the newest of those messages.', resolve: (n) => n.lastSeen }),
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

type FindingPage = ReturnType<typeof toPage<FindingRow, Finding>>;

const FindingEdgeRef = builder.objectRef<{ cursor: string; node: Finding }>('FindingEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.field({ type: FindingRef, resolve: (edge) => edge.node }) }),
});

const FindingConnectionRef = builder.objectRef<FindingPage>('FindingConnection').implement({
  fields: (t) => ({
    edges: t.field({ type: [FindingEdgeRef], resolve: (c) => c.edges }),
    nodes: t.field({ type: [FindingRef], resolve: (c) => c.nodes }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (c) => c.pageInfo }),
  }),
});

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

type FindingRow = Record<string, unknown> & { id: string; cursor_ts: string };

function rowToFinding(row: FindingRow): Finding {
  return {
    id: row.id,
    accountId: String(row.account_id),
    ownerId: String(row.owner_id),
    messageId: String(row.message_id),
    scan: String(row.scan),
    kind: String(row.kind),
    subtype: (row.subtype as string | null) ?? null,
    detail: String(row.detail),
    host: (row.host as string | null) ?? null,
    source: String(row.source),
    sender: (row.sender as string | null) ?? null,
    createdAt: new Date(row.created_at as string | Date),
  };
}

/** The account if the caller owns it (or is an admin); anyone else's looks missing: NOT_FOUND. */
function visibleAccount(ctx: GraphQLContext, accountId: string | number): Promise<Account> {
  return loadOwnedAccount(ctx.em, String(accountId), { ownerId: ctx.viewer.id, isAdmin: isAdmin(ctx) });
}

builder.queryFields((t) => ({
  newsletters: t.field({
    type: [NewsletterRef],
    description: "The account's newsletter senders as found by the last `scanUnsubscribe`, most messages first.",
    args: { accountId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const account = await visibleAccount(ctx, args.accountId);
      const rows: Record<string, unknown>[] = await ctx.em.getConnection().execute(
        `SELECT id, account_id, owner_id, sender, message_count, last_seen, unsubscribe_urls, mailtos, one_click, one_click_url, updated_at
           FROM newsletter WHERE account_id = ? ORDER BY message_count DESC, sender COLLATE "C", id`,
        [account.id],
        'all',
      );
      return rows.map(
        (row): Newsletter => ({
          id: String(row.id),
          accountId: String(row.account_id),
          ownerId: String(row.owner_id),
          sender: String(row.sender),
          messageCount: Number(row.message_count),
          lastSeen: row.last_seen === null ? null : new Date(row.last_seen as string | Date),
          unsubscribeUrls: (row.unsubscribe_urls as string[] | null) ?? [],
          mailtos: (row.mailtos as string[] | null) ?? [],
          oneClick: Boolean(row.one_click),
          oneClickUrl: (row.one_click_url as string | null) ?? null,
          updatedAt: new Date(row.updated_at as string | Date),
        }),
      );
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
      let sql = 'f.account_id = ? AND EXISTS (SELECT 1 FROM message m WHERE m.id = f.message_id)';
      const params: unknown[] = [account.id];
      if (args.scan) {
        sql += ' AND f.scan = ?';
        params.push(args.scan);
      }
      if (args.kind) {
        sql += ' AND f.kind = ?';
        params.push(args.kind);
      }
      if (args.after) {
        const cursor = decodeCursor(args.after);
        sql += ' AND (f.created_at, f.id) < (?::timestamptz, ?::uuid)';
        params.push(cursor.createdAt, cursor.id);
      }
      const rows: FindingRow[] = await ctx.em
        .getConnection()
        .execute(
          `SELECT f.*, f.created_at::text AS cursor_ts FROM finding f WHERE ${sql} ORDER BY f.created_at DESC, f.id DESC LIMIT ?`,
          [...params, size + 1],
          'all',
        );
      return toPage(rows, size, rowToFinding);
    },
  }),
  trackingSummary: t.field({
    type: [TrackingSenderSummaryRef],
    description:
      'Tracking per sender from the stored TRACKING findings (see `scanTracking`), over the non-trashed messages; senders without any finding are left out. Most tracked messages first.',
    args: { accountId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const account = await visibleAccount(ctx, args.accountId);
      const rows: {
        sender: string;
        message_count: number;
        tracked_message_count: number;
        pixel_count: number;
        tracker_hosts: string[] | null;
        link_params: string[] | null;
      }[] = await ctx.em.getConnection().execute(
        `WITH scoped AS (
           SELECT m.id, lower(btrim(m.from_address)) AS sender
             FROM message m
            WHERE m.account_id = ? AND m.deleted_at IS NULL AND m.from_address IS NOT NULL AND btrim(m.from_address) <> ''
         ), tracked AS (
           SELECT s.sender,
                  count(DISTINCT f.message_id)::int AS tracked_message_count,
                  (count(*) FILTER (WHERE f.kind = 'PIXEL'))::int AS pixel_count,
                  array_agg(DISTINCT f.detail) FILTER (WHERE f.kind = 'TRACKER_HOST') AS tracker_hosts,
                  array_agg(DISTINCT f.detail) FILTER (WHERE f.kind = 'LINK_PARAM') AS link_params
             FROM scoped s JOIN finding f ON f.message_id = s.id
            WHERE f.account_id = ? AND f.scan = 'TRACKING'
            GROUP BY s.sender
         ), counts AS (
           SELECT sender, count(*)::int AS message_count FROM scoped GROUP BY sender
         )
         SELECT t.*, c.message_count FROM tracked t JOIN counts c USING (sender)`,
        [account.id, account.id],
        'all',
      );
      return rows
        .map((row) => ({
          sender: row.sender,
          messageCount: row.message_count,
          trackedMessageCount: row.tracked_message_count,
          pixelCount: row.pixel_count,
          trackerHosts: sortStrings(row.tracker_hosts ?? []),
          linkParams: sortStrings(row.link_params ?? []),
        }))
        .sort((a, b) => b.trackedMessageCount - a.trackedMessageCount || a.sender.localeCompare(b.sender));
    },
  }),
}));

/** The order `summarizeTrackingBySender` uses (code units), whatever the database collation. */
function sortStrings(values: readonly string[]): string[] {
  return [...values].sort();
}
