import { z } from 'zod';
import { InvalidInputError } from './errors.js';

/**
 * The one way input is validated, for job arguments and for accounts, rules and retention policies
 * alike: parse with the zod schema declared beside the field (cross-field rules in `.refine`), and
 * refuse with an InvalidInputError (BAD_USER_INPUT) that lists each issue as `path: message`.
 * `prefix` names the argument when the schema covers only part of the input, e.g. `imap`.
 */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, prefix?: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new InvalidInputError(
    parsed.error.issues
      .map((issue) => {
        const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
        return path ? `${path}: ${issue.message}` : issue.message;
      })
      .join('; '),
  );
}

/** The name of a rule or a retention policy: trimmed, 1 to 255 characters. */
export const displayNameSchema = z.string().trim().min(1, 'name must be 1 to 255 characters').max(255, 'name must be 1 to 255 characters');

/**
 * What Jobwire accepts as an id: the 8-4-4-4-12 hex shape PostgreSQL's `uuid` type takes, any case,
 * any version. The GraphQL input guard, cursors, stores and job arguments (`z.guid()`) all agree on it.
 */
export function isUuid(value: string): boolean {
  return UUID_SHAPE.test(value);
}

const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
