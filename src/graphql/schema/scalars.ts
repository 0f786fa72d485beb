import { GraphQLError, Kind } from 'graphql';
import { isoString } from '../../engine/json-values.js';
import { builder } from '../builder.js';

/** Years PostgreSQL stores and prints as plain ISO dates; anything outside is refused, not mangled. */
const MIN_YEAR = 1;
const MAX_YEAR = 9999;

function parseDate(value: unknown): Date {
  const date = typeof value === 'string' && value.length <= 40 ? new Date(value) : null;
  if (!date || Number.isNaN(date.getTime()))
    throw new GraphQLError('DateTime must be an ISO 8601 string', { extensions: { code: 'BAD_USER_INPUT' } });
  // `2023-02-29` would otherwise roll over to March 1st.
  const calendar = /^(\d{4})-(\d{2})-(\d{2})/.exec(value as string);
  if (calendar) {
    const [year, month, day] = calendar.slice(1).map(Number) as [number, number, number];
    const check = new Date(Date.UTC(year, month - 1, day));
    if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) {
      throw new GraphQLError('DateTime is not a real calendar date', { extensions: { code: 'BAD_USER_INPUT' } });
    }
  }
  const year = date.getUTCFullYear();
  if (year < MIN_YEAR || year > MAX_YEAR) {
    throw new GraphQLError(`DateTime must be between the years ${MIN_YEAR} and ${MAX_YEAR}`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return date;
}

builder.scalarType('DateTime', {
  description: 'An instant, as an ISO 8601 string in UTC.',
  serialize: (value) => isoString(value instanceof Date ? value : new Date(String(value))),
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : null),
});

builder.scalarType('JSON', {
  description: 'Any JSON value.',
  serialize: (value) => value,
  parseValue: (value) => value,
});

builder.scalarType('File', {
  description: 'A file sent as a multipart request (GraphQL multipart request spec).',
  serialize: () => {
    throw new GraphQLError('File is an input-only scalar');
  },
  parseValue: (value) => value as File,
});
