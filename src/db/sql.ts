/**
 * A PostgreSQL array literal for a `?::text[]` / `?::uuid[]` placeholder. The query builder would
 * otherwise expand a JS array into a comma-separated list of values.
 */
export function pgArray(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

/**
 * Whether PostgreSQL refused a statement for a value in it (SQLSTATE classes 22, data exception;
 * 23, integrity constraint; 54, a limit exceeded), rather than for being unreachable or failing.
 */
export function isValueError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/** True for errors raised by the database driver; their messages hold SQL and data, so they are never stored or returned. */
export function isDatabaseError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const candidate = error as Error & { code?: unknown; sqlState?: unknown };
  return (
    error.name === 'DatabaseError' ||
    error.constructor.name.endsWith('Exception') ||
    (typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code))
  );
}
