import { z } from 'zod';
import { pgArray } from '../db/sql.js';
import { scanMessagePii, type PiiKind } from '../mail/scanners/pii.js';
import { normalizeSender, type ScannableAttachment } from '../mail/scanners/scannable-message.js';
import { readStoredBlob, type StoredBlob } from '../mail/message-store.js';
import { defineJob, type JobContext } from '../engine/define-job.js';
import { loadJobAccount } from './job-subjects.js';
import {
  accountScanArgs,
  accountScanInput,
  betweenMessages,
  messageBatches,
  normalizeFindings,
  pruneOrphanFindings,
  replaceMessageFindings,
  scanScope,
  prepareAccountScan,
  type FindingDraft,
} from './scan-support.js';

/** Bodies and text attachments are read per batch; this keeps one batch to a few megabytes. */
const BATCH_SIZE = 100;
/** Bytes of a text attachment that are scanned; the rest of a larger one is not read. (1 MiB) */
const MAX_ATTACHMENT_BYTES = 1024 * 1024;

const PII_KINDS = ['CARD', 'IBAN', 'PHONE', 'NATIONAL_ID'] as const satisfies readonly PiiKind[];

interface BodyRow {
  id: string;
  from_address: string | null;
  text_body: string | null;
  html_body: string | null;
}

interface AttachmentRow extends StoredBlob {
  message_id: string;
  filename: string | null;
  content_type: string;
}

export const scanPiiJob = defineJob({
  name: 'scan_pii',
  description:
    "Finds personal data (card numbers passing Luhn, IBANs passing mod 97, phone numbers, national ids) in the text bodies, HTML bodies and text attachments of an account's non-trashed messages, and stores them as PII findings holding masked excerpts only. A re-run keeps unchanged findings, adds new ones and removes stale ones.",
  graphql: { mutation: 'scanPii', typeName: 'ScanPiiJob' },
  unit: 'messages',
  args: accountScanArgs,
  input: accountScanInput('ScanPiiInput'),
  output: z
    .object({
      scanned: z.number().int().describe('Messages scanned.'),
      messagesWithPii: z.number().int().describe('Messages with at least one finding.'),
      findings: z.number().int().describe('Findings in the scanned messages (new or already stored).'),
      byKind: z
        .array(
          z
            .object({
              kind: z.enum(PII_KINDS).meta({ id: 'PiiKind', description: 'Kind of personal data.' }),
              count: z.number().int(),
            })
            .meta({ id: 'PiiKindCount' }),
        )
        .describe('Findings per kind, every kind listed.'),
    })
    .meta({ id: 'ScanPiiOutput' }),
  prepare: prepareAccountScan,
  async handler(input, ctx) {
    const account = await loadJobAccount(ctx.em, input.accountId);
    const scope = await scanScope(ctx.em, account.id);
    ctx.progress({ processed: 0, total: scope.total, message: 'scanning bodies and text attachments' });

    let scanned = 0;
    let messagesWithPii = 0;
    let added = 0;
    let removed = 0;
    const byKind = new Map<string, number>(PII_KINDS.map((kind) => [kind, 0]));
    for await (const batch of messageBatches<BodyRow>(ctx, scope, 'id, from_address, text_body, html_body', BATCH_SIZE)) {
      const attachments = await loadTextAttachments(
        ctx,
        batch.map((row) => row.id),
      );
      const drafts: FindingDraft[] = [];
      for (const row of batch) {
        await betweenMessages(ctx);
        const found = scanMessagePii({
          id: row.id,
          from: row.from_address,
          subject: null,
          date: null,
          headers: {},
          textBody: row.text_body,
          htmlBody: row.html_body,
          attachments: attachments.get(row.id) ?? [],
        });
        if (found.length === 0) continue;
        const sender = normalizeSender(row.from_address);
        // Only the masked value leaves the scanner; the raw one is never in hand here.
        const own = normalizeFindings(
          found.map((f) => ({
            messageId: row.id,
            kind: f.kind,
            subtype: f.subtype,
            detail: f.masked,
            host: null,
            source: f.source,
            sender,
          })),
        );
        messagesWithPii++;
        for (const finding of own) byKind.set(finding.kind, (byKind.get(finding.kind) ?? 0) + 1);
        drafts.push(...own);
      }
      const stored = await replaceMessageFindings(
        ctx.em,
        account,
        'PII',
        batch.map((row) => row.id),
        drafts,
      );
      added += stored.added;
      removed += stored.removed;
      scanned += batch.length;
      ctx.progress({ processed: scanned, total: Math.max(scope.total, scanned), message: 'scanning bodies and text attachments' });
    }
    ctx.checkpoint();
    removed += await pruneOrphanFindings(ctx.em, account.id, 'PII');
    ctx.progress({ processed: scanned, message: 'done' });
    const counts = PII_KINDS.map((kind) => ({ kind, count: byKind.get(kind) ?? 0 }));
    const findings = counts.reduce((sum, entry) => sum + entry.count, 0);
    ctx.log.info(
      `scanned ${scanned} messages: ${messagesWithPii} with personal data, ${findings} findings (${added} new, ${removed} removed)`,
      {
        scanned,
        messagesWithPii,
        findings,
        added,
        removed,
        byKind: Object.fromEntries(byKind),
      },
    );
    return { scanned, messagesWithPii, findings, byKind: counts };
  },
});

/** The `text/*` attachments of the messages, with their bytes (at most {@link MAX_ATTACHMENT_BYTES} each). */
async function loadTextAttachments(
  ctx: Pick<JobContext, 'em' | 'storage' | 'log'>,
  messageIds: readonly string[],
): Promise<Map<string, ScannableAttachment[]>> {
  const rows: AttachmentRow[] = await ctx.em.getConnection().execute(
    `SELECT message_id, filename, content_type, blob_key, blob_offset, size FROM message_attachment
      WHERE message_id = ANY(?::uuid[]) AND lower(content_type) LIKE 'text/%' ORDER BY message_id, filename, id`,
    [pgArray(messageIds)],
    'all',
  );
  const contents = await Promise.all(
    rows.map((row) =>
      readStoredBlob(ctx.storage, row, MAX_ATTACHMENT_BYTES).catch((error: unknown) => {
        // A missing blob only means less to scan; the message itself is still scanned.
        ctx.log.warn(`an attachment of message ${row.message_id} is unreadable; skipped`, {
          messageId: row.message_id,
          blobKey: row.blob_key,
          err: (error as Error).name,
        });
        return null;
      }),
    ),
  );
  const byMessage = new Map<string, ScannableAttachment[]>();
  rows.forEach((row, index) => {
    const content = contents[index];
    if (!content) return;
    const list = byMessage.get(row.message_id) ?? [];
    list.push({ filename: row.filename, contentType: row.content_type, content });
    byMessage.set(row.message_id, list);
  });
  return byMessage;
}
