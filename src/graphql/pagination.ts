import {
  GraphQLIncludeDirective,
  type GraphQLResolveInfo,
  GraphQLSkipDirective,
  getDirectiveValues,
  Kind,
  type SelectionNode,
  type SelectionSetNode,
} from 'graphql';
import { builder } from './builder.js';
import { isUuid } from '../engine/validation.js';
import { graphqlError } from './errors.js';

/** Page sizes accepted by every connection. */
export const MAX_PAGE_SIZE = 200;

export interface Cursor {
  /**
   * The row's sort timestamp as PostgreSQL prints it: full microsecond precision, unlike a JS Date.
   * `created_at`, unless the cursor names another order (e.g. `updated_at` for `UPDATED_AT`).
   */
  createdAt: string;
  id: string;
}

/**
 * A cursor of a connection's default order is `timestamp|id`; one of another order also names it,
 * `timestamp|id|ORDER`, so a cursor cannot resume a listing sorted differently from its own.
 */
export function encodeCursor(cursor: Cursor, order?: string): string {
  return Buffer.from(`${cursor.createdAt}|${cursor.id}${order ? `|${order}` : ''}`, 'utf8').toString('base64url');
}

/** `timestamptz::text` output, e.g. `2026-11-24 04:17:09.123456+00`. */
// Offsets PostgreSQL prints are within ±15:59; anything wider would reach the database and fail there.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?([+-](?:0\d|1[0-5])(?::?[0-5]\d)?)?$/;

/** Names of non-default orders as cursors carry them. */
const ORDER = /^[A-Z][A-Z_]{0,30}$/;

/** The position in `after`, which must come from a listing in `order` (omitted: the default order). */
export function decodeCursor(value: string, order?: string): Cursor {
  const [createdAt, id, cursorOrder, extra] = value.length <= 200 ? Buffer.from(value, 'base64url').toString('utf8').split('|') : [];
  if (
    !createdAt ||
    !id ||
    extra !== undefined ||
    (cursorOrder !== undefined && !ORDER.test(cursorOrder)) ||
    !isRealTimestamp(createdAt) ||
    !isUuid(id)
  ) {
    throw graphqlError('BAD_USER_INPUT', 'after: not a cursor returned by this API');
  }
  if (cursorOrder !== order) {
    throw graphqlError(
      'BAD_USER_INPUT',
      `after: a cursor of another order${cursorOrder ? ` (${cursorOrder})` : ''}; page with the orderBy it came from`,
    );
  }
  return { createdAt, id };
}

/** The shape alone lets through month 13 or hour 25, which PostgreSQL would refuse mid-query. */
function isRealTimestamp(text: string): boolean {
  const match = TIMESTAMP.exec(text);
  if (!match) return false;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return (
    year >= 1 &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second
  );
}

export function pageSize(first: number | null | undefined): number {
  const size = first ?? 50;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
    throw graphqlError('BAD_USER_INPUT', `first must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  return size;
}

/** One page of a keyset connection, in the shape the Relay connection types resolve. */
export interface Page<N> {
  edges: { cursor: string; node: N }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  /** Counts what the whole listing matches, across pages; only called when `totalCount` is selected. */
  count?: () => Promise<number>;
}

/** Options of `toPage`. */
export interface PageOptions {
  /** The listing's order when it is not the connection's default; its cursors carry it. */
  order?: string;
  /** Counts the whole listing, for connections declared with `totalCount`. */
  count?: () => Promise<number>;
}

/**
 * Turns `first + 1` fetched rows into a page whose cursors `cursorOf` makes: the extra row only says
 * there is a next page. A page fetched `after` a cursor has rows before it: that cursor came from one.
 */
export function pageOf<T, N>(
  rows: T[],
  size: number,
  toNode: (row: T) => N,
  cursorOf: (row: T) => string,
  after?: string | null,
  count?: () => Promise<number>,
): Page<N> {
  const edges = rows.slice(0, size).map((row) => ({ cursor: cursorOf(row), node: toNode(row) }));
  return {
    ...(count ? { count } : {}),
    edges,
    pageInfo: {
      hasNextPage: rows.length > size,
      hasPreviousPage: Boolean(after),
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/**
 * Turns `first + 1` fetched rows into a page: the extra row only says there is a next page. A page
 * fetched `after` a cursor has rows before it: that cursor came from one.
 */
export function toPage<T extends { cursor_ts: string; id: string }, N>(
  rows: T[],
  size: number,
  toNode: (row: T) => N,
  after?: string | null,
  options: PageOptions = {},
): Page<N> {
  const cursorOf = (row: T) => encodeCursor({ createdAt: row.cursor_ts, id: row.id }, options.order);
  return pageOf(rows, size, toNode, cursorOf, after, options.count);
}

/**
 * Whether the selection of the field being resolved asks for its child `name` (directly or through
 * fragments, `@skip` and `@include` applied), so a resolver can start that child's work beside its
 * own instead of after it.
 */
export function selectsChild(info: GraphQLResolveInfo, name: string): boolean {
  const seen = new Set<string>();
  const included = (node: SelectionNode) =>
    !getDirectiveValues(GraphQLSkipDirective, node, info.variableValues)?.if &&
    getDirectiveValues(GraphQLIncludeDirective, node, info.variableValues)?.if !== false;
  const within = (selectionSet: SelectionSetNode | undefined): boolean =>
    selectionSet?.selections.some((selection) => {
      if (!included(selection)) return false;
      if (selection.kind === Kind.FIELD) return selection.name.value === name;
      if (selection.kind === Kind.INLINE_FRAGMENT) return within(selection.selectionSet);
      const fragmentName = selection.name.value;
      if (seen.has(fragmentName)) return false;
      seen.add(fragmentName);
      return within(info.fragments[fragmentName]?.selectionSet);
    }) ?? false;
  return info.fieldNodes.some((node) => within(node.selectionSet));
}

/** Options of `keysetConnection`. */
export interface KeysetConnectionOptions {
  /**
   * Adds `totalCount: Int!` with this description; every page of the connection must then carry
   * `count` (see `toPage`). Default: no `totalCount`.
   */
  totalCount?: string;
}

/**
 * The Relay connection type of a keyset-paged list, e.g. `JobConnection` with `JobEdge`, plus a
 * `nodes` shortcut for clients that need no cursors and, where asked for, `totalCount`. Declared
 * once here for every list.
 */
// biome-ignore lint/suspicious/noExplicitAny: any object or interface ref of the builder
export function keysetConnection<N>(name: string, nodeType: any, options: KeysetConnectionOptions = {}) {
  return builder.connectionObject(
    {
      type: nodeType,
      name: `${name}Connection`,
      fields: (t) => ({
        nodes: t.field({
          type: [nodeType],
          description: 'The nodes of `edges`, for clients that need no cursors.',
          resolve: (page) => (page as unknown as Page<N>).edges.map((edge) => edge.node),
        }),
        ...(options.totalCount
          ? {
              totalCount: t.int({
                description: options.totalCount,
                resolve: (page) => {
                  const { count } = page as unknown as Page<N>;
                  if (!count) throw new Error(`${name}Connection: a page without count`);
                  return count();
                },
              }),
            }
          : {}),
      }),
    },
    { name: `${name}Edge` },
  );
}
