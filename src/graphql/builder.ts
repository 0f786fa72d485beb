import SchemaBuilder from '@pothos/core';
import type { JobRecord } from '../db/entities/job.entity.js';
import type { GraphQLContext } from './context.js';

/** The one schema builder; each module under `schema/` adds its types and fields to it. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
    File: { Input: File; Output: never };
  };
  Interfaces: { Job: JobRecord };
  DefaultFieldNullability: false;
}>({
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
