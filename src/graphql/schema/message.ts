import { callerOf } from '../../auth/access.js';
import type { Message } from '../../db/entities/message.entity.js';
import { loadOwnedAccount } from '../../jobs/access.js';
import { messageFilterSchema } from '../../mail/message-filter.js';
import { searchMessages } from '../../mail/message-search.js';
import { builder } from '../builder.js';
import { graphqlError } from '../errors.js';
import { decodeCursor, keysetConnection, pageSize, toPage } from '../pagination.js';
import { fieldType, stripNulls } from '../zod-to-graphql.js';

export const MessageRef = builder.objectRef<Message>('Message').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    accountId: t.exposeID('accountId'),
    messageId: t.exposeString('messageId', { nullable: true, description: 'The Message-ID header, without angle brackets.' }),
    subject: t.exposeString('subject', { nullable: true }),
    from: t.exposeString('fromAddress', { nullable: true }),
    fromName: t.exposeString('fromName', { nullable: true }),
    to: t.exposeStringList('toAddresses'),
    cc: t.exposeStringList('ccAddresses'),
    date: t.field({ type: 'DateTime', nullable: true, resolve: (m) => m.date }),
    size: t.exposeInt('size', { description: 'Raw size in bytes.' }),
    attachmentCount: t.exposeInt('attachmentCount'),
    labels: t.exposeStringList('labels'),
    isRead: t.exposeBoolean('isRead'),
    isStarred: t.exposeBoolean('isStarred'),
    inTrash: t.boolean({ resolve: (m) => m.deletedAt !== null }),
    archived: t.boolean({ resolve: (m) => m.archivedAt !== null }),
    textBody: t.exposeString('textBody', { nullable: true }),
    htmlBody: t.exposeString('htmlBody', { nullable: true }),
    headers: t.field({ type: 'JSON', resolve: (m) => m.headers }),
    createdAt: t.field({ type: 'DateTime', resolve: (m) => m.createdAt }),
  }),
});

const MessageConnectionRef = keysetConnection<Message>('Message', MessageRef);

const filterType = fieldType(messageFilterSchema, 'input', 'MessageFilter');

builder.queryField('messages', (t) =>
  t.field({
    type: MessageConnectionRef,
    description: "An account's messages, most recently stored first.",
    args: {
      accountId: t.arg.id({ required: true }),
      filter: t.arg({ type: filterType.type, required: false } as never),
      first: t.arg.int({ required: false, defaultValue: 50 }),
      after: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, ctx) => {
      const size = pageSize(args.first);
      const account = await loadOwnedAccount(ctx.em, String(args.accountId), callerOf(ctx.viewer));
      const filter = messageFilterSchema.safeParse(stripNulls((args as { filter?: unknown }).filter ?? {}));
      if (!filter.success)
        throw graphqlError('BAD_USER_INPUT', filter.error.issues.map((i) => `filter.${i.path.join('.')}: ${i.message}`).join('; '));
      const after = args.after ? decodeCursor(args.after) : null;
      const rows = await searchMessages(ctx.em, account.id, { filter: filter.data, after, limit: size + 1 });
      return toPage(rows, size, (row) => row.node, args.after);
    },
  }),
);
