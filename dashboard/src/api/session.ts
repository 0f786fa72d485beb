/**
 * Who is signed in: a bearer token kept in this browser's localStorage, given in the sign-in form,
 * by a link's URL fragment `#token=…` (which never reaches the server; the page asks first), or,
 * under `npm run dev`, by the dev token buttons. The claims are read, not verified, to label the page: the API checks the token
 * on every request and decides what it may see.
 */
const STORAGE_KEY = 'jobwire.dashboard.token';

export interface Session {
  token: string;
  subject: string;
  admin: boolean;
  /** Epoch milliseconds, when the token says. */
  expiresAt: number | null;
}

/** The session a token describes, or null when it is not a readable JWT. */
export function sessionOf(token: string): Session | null {
  try {
    const payload = token.split('.')[1];
    if (!payload) return null;
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown; role?: unknown; exp?: unknown };
    if (typeof claims.sub !== 'string') return null;
    return {
      token,
      subject: claims.sub,
      admin: claims.role === 'admin',
      expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : null,
    };
  } catch {
    return null;
  }
}

/** What the page starts with: the stored session, and a token a link offered (not used yet). */
export interface RestoredSession {
  session: Session | null;
  /** A `#token=` link's session, different from the stored one: the page asks before using it. */
  offered: Session | null;
}

/**
 * The stored session, and a `#token=` fragment's, taken off the address bar at once. A link's
 * token is never used silently, even when nobody is signed in: someone could send a link with
 * their own token, and whatever the reader then uploads would land in the sender's account.
 */
export function restoreSession(): RestoredSession {
  const fragment = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fragment) history.replaceState(null, '', location.pathname + location.search);
  const stored = localStorage.getItem(STORAGE_KEY);
  const session = stored ? sessionOf(stored) : null;
  const offered = fragment && fragment !== stored ? sessionOf(fragment) : null;
  return { session, offered };
}

export function saveSession(token: string): Session | null {
  const session = sessionOf(token.trim().replace(/^Bearer\s+/i, ''));
  if (session) localStorage.setItem(STORAGE_KEY, session.token);
  return session;
}

export function forgetSession(): void {
  localStorage.removeItem(STORAGE_KEY);
}
