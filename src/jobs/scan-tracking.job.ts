import { z } from 'zod';
import { normalizeSender } from '../mail/scanners/scannable-message.js';
import { scanTracking } from '../mail/scanners/tracking.js';
import { defineJob } from '../engine/define-job.js';
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

/** HTML bodies can be large; this keeps one batch to a few megabytes. */
const BATCH_SIZE = 200;

interface HtmlRow {
  id: string;
  from_address: string | null;
  html_body: string | null;
}

export const scanTrackingJob = defineJob({
  name: 'scan_tracking',
  description:
    "Finds tracking pixels, known tracker hosts and tracking link parameters in the HTML bodies of an account's non-trashed messages, and stores them as TRACKING findings. A re-run keeps unchanged findings, adds new ones and removes those the messages no longer have (and those of trashed or deleted messages).",
  graphql: { mutation: 'scanTracking', typeName: 'ScanTrackingJob' },
  unit: 'messages',
  args: accountScanArgs,
  input: accountScanInput('ScanTrackingInput'),
  output: z
    .object({
      scanned: z.number().int().describe('Messages scanned.'),
      messagesWithTracking: z.number().int().describe('Messages with at least one finding.'),
      findings: z.number().int().describe('Findings in the scanned messages (new or already stored).'),
    })
    .meta({ id: 'ScanTrackingOutput' }),
  prepare: prepareAccountScan,
  async handler(input, ctx) {
    const account = await loadJobAccount(ctx.em, input.accountId);
    const scope = await scanScope(ctx.em, account.id);
    ctx.progress({ processed: 0, total: scope.total, message: 'scanning HTML bodies' });

    const result = { scanned: 0, messagesWithTracking: 0, findings: 0 };
    let added = 0;
    let removed = 0;
    for await (const batch of messageBatches<HtmlRow>(ctx, scope, 'id, from_address, html_body', BATCH_SIZE)) {
      const drafts: FindingDraft[] = [];
      for (const row of batch) {
        await betweenMessages(ctx);
        if (row.html_body === null) continue;
        const found = scanTracking({
          id: row.id,
          from: row.from_address,
          subject: null,
          date: null,
          headers: {},
          textBody: null,
          htmlBody: row.html_body,
        });
        if (found.length === 0) continue;
        result.messagesWithTracking++;
        const sender = normalizeSender(row.from_address);
        for (const finding of found) {
          drafts.push({
            messageId: row.id,
            kind: finding.kind,
            subtype: null,
            detail: finding.detail,
            host: finding.host,
            source: 'html',
            sender,
          });
        }
      }
      const findings = normalizeFindings(drafts);
      const stored = await replaceMessageFindings(
        ctx.em,
        account,
        'TRACKING',
        batch.map((row) => row.id),
        findings,
      );
      added += stored.added;
      removed += stored.removed;
      result.findings += findings.length;
      result.scanned += batch.length;
      ctx.progress({ processed: result.scanned, total: Math.max(scope.total, result.scanned), message: 'scanning HTML bodies' });
    }
    ctx.checkpoint();
    removed += await pruneOrphanFindings(ctx.em, account.id, 'TRACKING');
    ctx.progress({ processed: result.scanned, message: 'done' });
    ctx.log.info(
      `scanned ${result.scanned} messages: ${result.messagesWithTracking} with tracking, ${result.findings} findings (${added} new, ${removed} removed)`,
      { ...result, added, removed },
    );
    return result;
  },
});
