import { lexicographicSortSchema, type GraphQLSchema } from 'graphql';
import { builder } from '../builder.js';
import './scalars.js';
import './job.js';
import './job-types.js';
import './schedules.js';
import './enqueue.js';
import './subscriptions.js';
import './job-logs.js';
import './job-attempts.js';
import './account.js';
import './account-imap.js';
import './message.js';
import './rule.js';
import './retention.js';
import './findings.js';
import './archive.js';
import './system-config.js';
import './queue-stats.js';
import './limits.js';

let schema: GraphQLSchema | null = null;

/** The executable schema; the only place `toSchema()` is called. */
export function buildSchema(): GraphQLSchema {
  schema ??= builder.toSchema({ sortSchema: false });
  return schema;
}

export function printableSchema(): GraphQLSchema {
  return lexicographicSortSchema(buildSchema());
}
