import { useEffect, useState } from 'preact/hooks';
import { TokenCheck } from '../api/documents';
import { type GraphQLRequestError, request } from '../api/graphql';
import { saveSession, type Session } from '../api/session';

/**
 * Sign in with a bearer token (from `npm run token -- --sub alice`), or follow a link carrying
 * `#token=…`. Under `npm run dev` the API also offers dev tokens, one click each.
 */
export function SignIn({ notice, onSignIn }: { notice: string | null; onSignIn(session: Session): void }) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [devTokens, setDevTokens] = useState(false);

  useEffect(() => {
    fetch('/dashboard/settings.json')
      .then((response) => (response.ok ? response.json() : null))
      .then((settings: { devTokens?: boolean } | null) => setDevTokens(settings?.devTokens === true))
      .catch(() => setDevTokens(false));
  }, []);

  const submit = (event: Event) => {
    event.preventDefault();
    const session = saveSession(token);
    if (session) onSignIn(session);
    else setProblem('That is not a token: paste the JWT that `npm run token` printed.');
  };

  const devSignIn = async (role: 'user' | 'admin') => {
    const response = await fetch(`/dashboard/dev-token?role=${role}`, { method: 'POST' }).catch(() => null);
    const body = response?.ok ? ((await response.json()) as { token: string }) : null;
    const session = body && saveSession(body.token);
    if (session) onSignIn(session);
    else setProblem('The API did not hand out a dev token.');
  };

  return (
    <main class="sign-in">
      <h1>Jobwire dashboard</h1>
      <p>Watch your background jobs live, start new ones, and see what happens inside them.</p>
      {notice && <p role="alert">{notice}</p>}
      <form onSubmit={submit} aria-label="Sign in">
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(event) => setToken((event.target as HTMLInputElement).value)}
          placeholder="a JWT from: npm run token -- --sub alice"
          required
        />
        <button type="submit">Sign in</button>
      </form>
      {problem && <p role="alert">{problem}</p>}
      {devTokens && (
        <div class="dev-tokens">
          <p>Development server: sign in without a token.</p>
          <button type="button" onClick={() => devSignIn('user')}>
            Dev token: user
          </button>{' '}
          <button type="button" onClick={() => devSignIn('admin')}>
            Dev token: admin
          </button>
        </div>
      )}
      <p class="hint">
        The token stays in this browser (localStorage) and is sent only to this server. A link may carry one as <code>#token=…</code>; the
        part after <code>#</code> never reaches a server.
      </p>
    </main>
  );
}

const who = (session: Session) => `${session.subject} (${session.admin ? 'admin' : 'user'})`;

/**
 * A link carried a token: the reader decides whether to use it (see restoreSession), and the API
 * checks it before it replaces the one in use (its claims are only what the link says until then).
 */
export function LinkSignIn({ offered, current, onChoose }: { offered: Session; current: Session | null; onChoose(use: boolean): void }) {
  const [problem, setProblem] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);
  const accept = async () => {
    setChecking(true);
    try {
      await request(offered.token, TokenCheck);
      onChoose(true);
    } catch (error) {
      const refused = error as GraphQLRequestError;
      setProblem(`The API refused the link's token (${refused.code}): ${refused.message}`);
      setChecking(false);
    }
  };
  return (
    <main class="sign-in">
      <h1>Jobwire dashboard</h1>
      <p role="alert">
        This link carries a token for <strong>{who(offered)}</strong>. Only use it if you expected to: whatever you start or upload will
        belong to {offered.subject}.
      </p>
      {current && <p>You are signed in as {who(current)}.</p>}
      {problem && (
        <p role="alert" class="error">
          {problem}
        </p>
      )}
      <p>
        {!problem && (
          <>
            <button type="button" disabled={checking} onClick={accept}>
              Sign in as {offered.subject}
            </button>{' '}
          </>
        )}
        <button type="button" onClick={() => onChoose(false)}>
          {current ? `Stay ${current.subject}` : 'Ignore the link'}
        </button>
      </p>
    </main>
  );
}
