/**
 * Who is signed in: a bearer token kept in this browser's localStorage, given in the sign-in form,
 * by the URL fragment `#token=…` (which never reaches the server), or, under `npm run dev`, by the
 * dev token buttons. The claims are read, not verified, to label the page: the API checks the token
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

const describe = (session: Session | null) => (session ? `${session.subject} (${session.admin ? 'admin' : 'user'})` : 'nobody');

/**
 * The stored session, after taking a `#token=` fragment off the address bar. A link must not swap
 * a signed-in user's token silently (someone could send one with theirs), so that asks first.
 */
export function restoreSession(): Session | null {
  const fragment = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fragment) {
    history.replaceState(null, '', location.pathname + location.search);
    const stored = localStorage.getItem(STORAGE_KEY);
    const offered = sessionOf(fragment);
    if (
      offered &&
      (!stored ||
        stored === fragment ||
        confirm(`This link signs you in as ${describe(offered)}. Use it instead of ${describe(sessionOf(stored))}?`))
    ) {
      localStorage.setItem(STORAGE_KEY, fragment);
    }
  }
  const token = localStorage.getItem(STORAGE_KEY);
  return token ? sessionOf(token) : null;
}

export function saveSession(token: string): Session | null {
  const session = sessionOf(token.trim().replace(/^Bearer\s+/i, ''));
  if (session) localStorage.setItem(STORAGE_KEY, session.token);
  return session;
}

export function forgetSession(): void {
  localStorage.removeItem(STORAGE_KEY);
}
