import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { GraphiQLOptions } from 'graphql-yoga';
import { type StaticFile, sendStaticFile, sendText, staticFile } from './static-files.js';

/**
 * GraphiQL served by Jobwire itself, from `@graphql-yoga/render-graphiql` in the lock file: no
 * request leaves the host (yoga's default page loads it from a CDN). The page is small; the
 * bundle (about 9 MB: GraphiQL, Monaco and its workers; about 2 MB gzipped) is served once per
 * version under ASSET_PATH with an immutable cache header, and loaded only when someone opens the page.
 *
 * The caller's token is given in a field on the page or in the URL fragment (`#token=…`, which
 * never reaches the server); it is kept in the browser's localStorage and sent as the
 * Authorization header of every request GraphiQL makes, subscriptions (over SSE) included.
 */

/** Where the bundle's files are served; the version in the path makes them cacheable forever. */
export const GRAPHIQL_ASSET_PATH = '/graphiql/assets/';

/** The bundle's package version, as the asset path names it. */
export const GRAPHIQL_VERSION: string = createRequire(import.meta.url)('@graphql-yoga/render-graphiql/package.json').version;

let assets: Promise<Map<string, StaticFile>> | null = null;

/** The bundle's files by name, read from the package on first use (not at start: it is large). */
function loadAssets(): Promise<Map<string, StaticFile>> {
  assets ??= import('@graphql-yoga/render-graphiql/graphiql').then(async (bundle) => {
    // The version is in the path: each file is cacheable forever.
    const asset = (text: string, type: string) => staticFile(text, type, true);
    const js = 'text/javascript; charset=utf-8';
    const files: [string, string, string][] = [
      ['graphiql.js', bundle.js, js],
      ['graphiql.css', bundle.css, 'text/css; charset=utf-8'],
      ['editorWorkerService.js', bundle.editorWorkerService, js],
      ['json.js', bundle.jsonWorker, js],
      ['graphql.js', bundle.graphqlWorker, js],
    ];
    return new Map(await Promise.all(files.map(async ([name, text, type]) => [name, await asset(text, type)] as const)));
  });
  return assets;
}

/** Serves one file of the bundle (GET or HEAD under GRAPHIQL_ASSET_PATH). */
export async function serveGraphiQLAsset(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  // Only this version's files: an old page asking a new replica (or the reverse) must not cache the wrong bundle forever.
  const [version, name = '', extra] = path.slice(GRAPHIQL_ASSET_PATH.length).split('/');
  if (version !== encodeURIComponent(GRAPHIQL_VERSION) || extra !== undefined) return sendText(res, 404, 'not found');
  let asset: StaticFile | undefined;
  try {
    asset = (await loadAssets()).get(name);
  } catch {
    assets = null;
    return sendText(res, 500, 'GraphiQL could not be loaded');
  }
  if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) return sendText(res, 404, 'not found');
  sendStaticFile(req, res, asset);
}

/** The operation GraphiQL opens with: it runs as is for any user with a token. */
export const GRAPHIQL_EXAMPLE = `# Jobwire: background jobs with live progress. Paste a token above (or open /graphql#token=...),
# then run this. Start a job with a mutation (e.g. scanPii), then watch it:
#   subscription { jobProgress(jobId: "<id>") { status progress message job { id } } }
query RecentJobs {
  jobs(first: 10) {
    nodes { id type status progress message createdAt tags }
    totalCount
  }
  jobCounts { type status count }
  jobTypes { name mutation description }
}
`;

/** JSON for an inline script: `<` escaped, so no value can close the script element. */
function inlineJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

/**
 * The GraphiQL page (yoga's `renderGraphiQL`). `version` names the bundle's path, so a new
 * release's page never loads an old cached bundle.
 */
export function renderJobwireGraphiQL(options: GraphiQLOptions, version: string): string {
  const assetsAt = `${GRAPHIQL_ASSET_PATH}${encodeURIComponent(version)}/`;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Jobwire GraphiQL</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="${assetsAt}graphiql.css" />
    <style>
      html, body { height: 100%; margin: 0; }
      body { display: flex; flex-direction: column; }
      #token-bar { display: flex; gap: 0.5rem; align-items: center; padding: 0.4rem 0.75rem; font: 14px system-ui, sans-serif;
        border-bottom: 1px solid #ccc; background: #f6f7f9; color: #222; }
      #token-bar input { flex: 1; max-width: 40rem; font: inherit; padding: 0.2rem 0.4rem; }
      #token-bar output { color: #555; }
      #root { flex: 1; min-height: 0; }
    </style>
  </head>
  <body>
    <form id="token-bar" aria-label="Authentication">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
        placeholder="a JWT from: npm run token -- --sub alice --role user" />
      <button type="submit">Use token</button>
      <button type="button" id="forget">Forget</button>
      <output id="token-state" aria-live="polite"></output>
    </form>
    <div id="root"></div>
    <script>
      // The fragment never reaches the server; it is taken off the address bar once read.
      const KEY = 'jobwire.graphiql.token';
      const fragment = new URLSearchParams(location.hash.slice(1)).get('token');
      /** Who a token says it is: its subject and role, read (not verified) from its payload. */
      const who = (jwt) => {
        try {
          const claims = JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
          return String(claims.sub) + ' (' + String(claims.role || 'user') + ')';
        } catch {
          return 'an unreadable token';
        }
      };
      if (fragment) {
        history.replaceState(null, '', location.pathname + location.search);
        const stored = localStorage.getItem(KEY);
        // A link's token is never taken silently, even with none stored: someone could send one with
        // theirs, and what you then run would act on their account.
        const question = stored
          ? 'This link carries a token for ' + who(fragment) + '. Use it instead of yours (' + who(stored) + ')?'
          : 'This link signs you in as ' + who(fragment) + '. Use it?';
        if (stored === fragment || confirm(question)) localStorage.setItem(KEY, fragment);
      }
      const token = localStorage.getItem(KEY) || '';
      const field = document.getElementById('token');
      field.value = token;
      document.getElementById('token-state').textContent = token ? 'signed in as ' + who(token) : 'no token: requests will be refused';
      document.getElementById('token-bar').addEventListener('submit', (event) => {
        event.preventDefault();
        if (field.value.trim()) localStorage.setItem(KEY, field.value.trim().replace(/^Bearer\\s+/i, ''));
        else localStorage.removeItem(KEY);
        location.reload();
      });
      document.getElementById('forget').addEventListener('click', () => {
        localStorage.removeItem(KEY);
        location.reload();
      });
      const workers = {
        editorWorkerService: '${assetsAt}editorWorkerService.js',
        json: '${assetsAt}json.js',
        graphql: '${assetsAt}graphql.js',
      };
      self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (_moduleId, label) => workers[label] };
    </script>
    <script src="${assetsAt}graphiql.js"></script>
    <script>
      const options = ${inlineJson(options)};
      if (token) options.additionalHeaders = { Authorization: 'Bearer ' + token };
      YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), options);
    </script>
  </body>
</html>`;
}
