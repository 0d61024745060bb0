import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Tests that need more than this process: a `redis-server` (`*.redis.test.ts`), another process
 * of their own (`*.process.test.ts`), or the service deployed as processes (`test/e2e/`). The
 * rest is the unit subset, `npm run test:unit`, which refuses to start any process.
 */
const PROCESS_TESTS = ['**/*.redis.test.ts', '**/*.process.test.ts', 'test/e2e/**'];

const UNIT_SETUP = ['test/support/unit-subset.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...PROCESS_TESTS],
          setupFiles: UNIT_SETUP,
        },
      },
      {
        extends: true,
        test: { name: 'processes', include: PROCESS_TESTS },
      },
    ],
  },
});
