import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { callerOf } from '../auth/access.js';
import type { JobRecord } from '../db/entities/job.entity.js';
import type { GraphQLContext } from './context.js';
import { graphqlError } from './errors.js';

/**
 * The one schema builder; each module under `schema/` adds its types and fields to it.
 * Every operation is authenticated before it runs (the context needs a valid token); who may use a
 * field beyond that is declared on the field with `authScopes`, e.g. `authScopes: { admin: true }`.
 */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: { admin: boolean };
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
    File: { Input: File; Output: never };
  };
  Interfaces: { Job: JobRecord };
  DefaultFieldNullability: false;
  DefaultEdgesNullability: false;
  DefaultNodeNullability: false;
}>({
  plugins: [ScopeAuthPlugin, RelayPlugin, DataloaderPlugin],
  // Relay connection types (Connection, Edge, PageInfo) over Jobwire's own keyset SQL; ids stay plain UUIDs.
  relay: {
    cursorType: 'String',
    clientMutationId: 'omit',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    edgesFieldOptions: { nullable: false },
    nodeFieldOptions: { nullable: false },
    endCursorFieldOptions: { description: 'Pass as `after` to get the next page.' },
  },
  scopeAuth: {
    authScopes: (ctx) => ({ admin: callerOf(ctx.viewer).isAdmin }),
    // Subscriptions check their scopes once, when they start, like queries and mutations.
    authorizeOnSubscribe: true,
    unauthorizedError: (_parent, _ctx, info) => graphqlError('FORBIDDEN', `${info.fieldName} needs the admin role`),
  },
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
