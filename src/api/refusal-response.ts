/**
 * A request refused before GraphQL runs, as a GraphQL error response: the HTTP status, and the
 * code (with `retryAfter`, and the Retry-After header, when trying again later can succeed).
 */
export function refusalResponse(
  fetchAPI: { Response: typeof Response },
  status: number,
  code: string,
  message: string,
  retryAfterSeconds?: number,
): Response {
  const later = retryAfterSeconds !== undefined;
  return new fetchAPI.Response(
    JSON.stringify({ errors: [{ message, extensions: { code, ...(later ? { retryAfter: retryAfterSeconds } : {}) } }] }),
    {
      status,
      headers: { 'content-type': 'application/json; charset=utf-8', ...(later ? { 'retry-after': String(retryAfterSeconds) } : {}) },
    },
  );
}
