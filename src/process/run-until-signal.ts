import { ConfigError } from '../config/env.js';
import type { Logger } from '../observability/logger.js';
import { stopTracing } from '../observability/tracing.js';

interface Running {
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * Starts a process body and stops it gracefully on SIGTERM or SIGINT; a second signal exits at
 * once. A configuration error prints its list of problems and exits with status 1.
 */
export async function runUntilSignal(name: string, start: () => Promise<Running>): Promise<void> {
  let running: Running;
  try {
    running = await start();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
    } else {
      console.error(`${name} failed to start:`, error instanceof Error ? error.message : error);
    }
    process.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    running.logger.info({ signal }, `${name} shutting down`);
    let code = 0;
    try {
      await running.stop();
      running.logger.info(`${name} stopped`);
    } catch (error) {
      running.logger.error({ err: error }, `${name} did not stop cleanly`);
      code = 1;
    } finally {
      await stopTracing();
    }
    // The log goes out in blocks: the last one written before exiting, whole and in order.
    await new Promise<void>((resolve) => running.logger.flush(() => resolve()));
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
