/** Largest `metadata` a job may hold, serialised: at enqueue, and as its handler merges into it. */
export const MAX_METADATA_BYTES = 8 * 1024;

/** Bytes of `value` as JSON (UTF-8); infinite when it has no JSON form (a bigint, a cycle). */
export function serialisedBytes(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? '');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
