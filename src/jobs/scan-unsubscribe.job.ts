import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { pgArray } from '../db/sql.js';
import type { ScannableMessage } from '../mail/scanners/scannable-message.js';
import { groupNewsletters, type NewsletterGroup } from '../mail/scanners/unsubscribe.js';
import { defineJob } from '../engine/define-job.js';
import { loadJobAccount } from './job-subjects.js';
import { accountScanArgs, accountScanInput, messageBatches, scanScope, prepareAccountScan } from './scan-support.js';

/** Only two headers are read per message, so batches can be large. */
const BATCH_SIZE = 1_000;
/** Newsletter rows per upsert statement (11 parameters each). */
const UPSERT_CHUNK = 500;

interface HeaderRow {
  id: string;
  from_address: string | null;
  /** The driver may hand timestamps over as strings. */
  date: Date | string | null;
  list_unsubscribe: string | null;
  list_unsubscribe_post: string | null;
}

const scanUnsubscribeInput = accountScanInput('ScanUnsubscribeInput');

export const scanUnsubscribeJob = defineJob({
  name: 'scan_unsubscribe',
  description:
    "Finds newsletters in an account's non-trashed messages from their List-Unsubscribe and List-Unsubscribe-Post headers, grouped by sender, and replaces the account's `newsletters` with the result.",
  graphql: { mutation: 'scanUnsubscribe', typeName: 'ScanUnsubscribeJob' },
  unit: 'messages',
  args: accountScanArgs,
  input: scanUnsubscribeInput,
  output: z
    .object({
      scanned: z.number().int().describe('Messages scanned.'),
      newsletters: z.number().int().describe('Senders found to send newsletters.'),
      oneClick: z.number().int().describe('Of those, senders offering RFC 8058 one-click unsubscribe.'),
    })
    .meta({ id: 'ScanUnsubscribeOutput' }),
  prepare: prepareAccountScan,
  async handler(input, ctx) {
    const account = await loadJobAccount(ctx.em, input.accountId);
    const scope = await scanScope(ctx.em, account.id);
    ctx.progress({ processed: 0, total: scope.total, message: 'reading List-Unsubscribe headers' });

    // Only messages carrying the header are kept, with just what grouping needs.
    const candidates: ScannableMessage[] = [];
    let scanned = 0;
    const columns =
      "id, from_address, date, headers->>'list-unsubscribe' AS list_unsubscribe, headers->>'list-unsubscribe-post' AS list_unsubscribe_post";
    for await (const batch of messageBatches<HeaderRow>(ctx, scope, columns, BATCH_SIZE)) {
      for (const row of batch) {
        if (row.list_unsubscribe === null) continue;
        const headers: Record<string, string> = { 'list-unsubscribe': row.list_unsubscribe };
        if (row.list_unsubscribe_post !== null) headers['list-unsubscribe-post'] = row.list_unsubscribe_post;
        const date = row.date === null ? null : new Date(row.date);
        candidates.push({ id: row.id, from: row.from_address, subject: null, date, headers, textBody: null, htmlBody: null });
      }
      scanned += batch.length;
      ctx.progress({ processed: scanned, total: Math.max(scope.total, scanned), message: 'reading List-Unsubscribe headers' });
    }

    ctx.checkpoint();
    const groups = groupNewsletters(candidates);
    ctx.progress({ message: `saving ${groups.length} newsletters` });
    await replaceNewsletters(ctx.em, account, groups);
    ctx.progress({ processed: scanned, message: 'done' });
    const result = { scanned, newsletters: groups.length, oneClick: groups.filter((group) => group.oneClick).length };
    ctx.log.info(`scanned ${scanned} messages: ${result.newsletters} newsletter senders, ${result.oneClick} with one-click unsubscribe`, {
      ...result,
      withListUnsubscribe: candidates.length,
    });
    return result;
  },
});

/**
 * Makes the account's `newsletter` rows exactly `groups`, in one transaction: upserted by sender
 * (a sender found again keeps its row id), then every other sender's row deleted.
 */
async function replaceNewsletters(
  em: EntityManager,
  account: { id: string; ownerId: string },
  groups: readonly NewsletterGroup[],
): Promise<void> {
  // The column is varchar(320); a longer "address" is not one anyone can unsubscribe from.
  const rows = groups.filter((group) => [...group.sender].length <= 320);
  await em.transactional(async (tem) => {
    const connection = tem.getConnection();
    const trx = tem.getTransactionContext();
    const now = new Date();
    for (let start = 0; start < rows.length; start += UPSERT_CHUNK) {
      const chunk = rows.slice(start, start + UPSERT_CHUNK);
      const params: unknown[] = [];
      for (const group of chunk) {
        params.push(
          randomUUID(),
          account.id,
          account.ownerId,
          group.sender,
          group.messageCount,
          group.lastSeen,
          JSON.stringify(group.unsubscribeUrls),
          JSON.stringify(group.mailtos),
          group.oneClick,
          group.oneClickUrl,
          now,
        );
      }
      await connection.execute(
        `INSERT INTO newsletter (id, account_id, owner_id, sender, message_count, last_seen, unsubscribe_urls, mailtos, one_click, one_click_url, updated_at)
         VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?, ?, ?)').join(', ')}
         ON CONFLICT ON CONSTRAINT newsletter_account_sender_unique DO UPDATE SET
           owner_id = EXCLUDED.owner_id, message_count = EXCLUDED.message_count, last_seen = EXCLUDED.last_seen,
           unsubscribe_urls = EXCLUDED.unsubscribe_urls, mailtos = EXCLUDED.mailtos, one_click = EXCLUDED.one_click,
           one_click_url = EXCLUDED.one_click_url, updated_at = EXCLUDED.updated_at`,
        params,
        'run',
        trx,
      );
    }
    await connection.execute(
      'DELETE FROM newsletter WHERE account_id = ? AND NOT (sender = ANY(?::text[]))',
      [account.id, pgArray(rows.map((group) => group.sender))],
      'run',
      trx,
    );
  });
}
