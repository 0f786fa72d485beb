// `npm run dev`: migrates, then runs one API replica and one worker sidecar, for local work (the
// dashboard is built first by the `predev` script).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));

// The dashboard's "dev token" buttons: only here, never in a deployment (refused with NODE_ENV=production).
const env = { DEV_TOKENS: 'true', ...process.env };

function run(script: string): ChildProcess {
  return spawn(tsx, [script], { cwd: root, stdio: 'inherit', env });
}

const migrate = run('src/db/migrate.ts');
const code = await new Promise<number>((resolve) => migrate.on('exit', (c) => resolve(c ?? 1)));
if (code !== 0) process.exit(code);

const children = [run('src/api/main.ts'), run('src/worker/main.ts')];
let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  stopping = true;
  for (const child of children) child.kill(signal);
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
for (const child of children) {
  child.on('exit', (exitCode) => {
    if (!stopping) {
      console.error(`a process exited (${exitCode}); stopping the other`);
      stop('SIGTERM');
    }
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode ?? 0);
  });
}
