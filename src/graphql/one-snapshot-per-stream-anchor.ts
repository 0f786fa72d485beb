import { IsolationLevel } from '@mikro-orm/postgresql';
import { type DocumentNode, getOperationAST, Kind, visit } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { GraphQLContext } from './context.js';

const anchors = new WeakMap<DocumentNode, boolean>();

/** Whether a document selects `streamCursor` anywhere (documents are parsed once and cached by yoga). */
function selectsStreamCursor(document: DocumentNode): boolean {
  let found = anchors.get(document);
  if (found === undefined) {
    found = false;
    visit(document, {
      Field(node) {
        if (node.name.value === 'streamCursor') found = true;
      },
    });
    anchors.set(document, found);
  }
  return found;
}

/**
 * A query that selects `streamCursor` anchors a stream: a client reads a page, `totalCount`,
 * `jobCounts` and `jobThroughput`, then follows `jobEvents(after: streamCursor)` and keeps them
 * up to date from each event's `previousStatus`. That is exact only if every one of them was read
 * at the position the cursor names, so such a query runs in one read-only REPEATABLE READ
 * transaction: its statements share one snapshot, the one `streamCursor` is taken from. Other
 * queries run as before, one statement at a time, without the BEGIN and COMMIT.
 */
export function useOneSnapshotPerStreamAnchor(): Plugin<GraphQLContext> {
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.kind !== Kind.OPERATION_DEFINITION || operation.operation !== 'query' || !selectsStreamCursor(args.document)) return;
      setExecuteFn(async (executeArgs) => {
        const context = executeArgs.contextValue as GraphQLContext;
        const outside = context.em;
        try {
          return await outside.transactional(
            async (em) => {
              context.em = em;
              return executeFn(executeArgs);
            },
            { isolationLevel: IsolationLevel.REPEATABLE_READ, readOnly: true },
          );
        } finally {
          context.em = outside;
        }
      });
    },
  };
}
