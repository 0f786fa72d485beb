import type { BenchEnv } from './bench-env.js';
import type { ApiProc, Proc } from './processes.js';

/** What every scenario gets from the runner. */
export interface BenchContext {
  env: BenchEnv;
  /** Smaller counts, for a quick look (about a minute or two). */
  quick: boolean;
  /** API replica A, up for the whole run. */
  api: ApiProc;
  /** Owner of the bench's own jobs and account; one of the seeded history's owners. */
  userId: string;
  userToken: string;
  adminToken: string;
  /** A mail account of `userId`, created through the API. */
  accountId: string;
  /** The bench worker sidecar (real catalogue + bench job types), started on first use. */
  worker(): Promise<Proc>;
  log(message: string): void;
}

/** Quick or full count. */
export const size = (ctx: BenchContext, full: number, quick: number): number => (ctx.quick ? quick : full);
