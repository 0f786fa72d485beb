import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Files run in parallel, each in its own database and Redis prefix; two cores set the ceiling.
    pool: 'forks',
    maxWorkers: 2,
  },
});
