import type { Viewer } from './tokens.js';

/**
 * The one access rule of Jobwire's owned data (accounts, jobs, rules, retention policies,
 * archives, findings): a row may be used by its owner or by an admin, nobody else. Everything that
 * decides "may this caller see or change that row" goes through here, in the API and in jobs alike.
 *
 * Callers that are refused must not learn whether the row exists: report someone else's row
 * exactly like a missing one (NOT_FOUND, or null where a field is nullable).
 */

/** Who acts, as access checks see it. Job contexts carry the same two fields, decided at enqueue time. */
export interface Caller {
  /** The token's subject: owner of what the caller creates. */
  ownerId: string;
  /** Admins may use every owner's rows. */
  isAdmin: boolean;
}

/** The caller an authenticated viewer acts as. */
export function callerOf(viewer: Pick<Viewer, 'id' | 'role'>): Caller {
  return { ownerId: viewer.id, isAdmin: viewer.role === 'admin' };
}

/**
 * Whether the caller may use a row owned by `ownerId`: its owner or an admin. A row without an
 * owner (`null`, e.g. a job started by a schedule) is an admin's only.
 */
export function mayAccess(caller: Caller, ownerId: string | null): boolean {
  return caller.isAdmin || (ownerId !== null && ownerId === caller.ownerId);
}

/**
 * The owner to restrict a listing to: the caller's own id, or null (every owner) for an admin.
 * Listings filter by it instead of checking `mayAccess` row by row.
 */
export function ownerFilter(caller: Caller): string | null {
  return caller.isAdmin ? null : caller.ownerId;
}
