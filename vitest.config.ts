import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Tests that need more than this process: a `redis-server` (`*.redis.test.ts`), another process
 * of their own (`*.process.test.ts`), or the service deployed as processes (`test/e2e/`). The
 * rest is the unit subset, `npm run test:unit`, which refuses to start any process.
 */
const PROCESS_TESTS = ['**/*.redis.test.ts', '**/*.process.test.ts', 'test/e2e/**/*.test.ts'];

/**
 * End-to-end tests that compare latencies of runs side by side (`*.ratio.test.ts`): they run
 * after every other test, alone, so the rest of the suite does not load the machine under them.
 */
const RATIO_TESTS = ['test/e2e/**/*.ratio.test.ts'];

/**
 * In-process suites that run real tasks through the worker: each runs twice, with the outbound
 * thread on and off (`OUTBOUND_THREAD` is never left to `auto`, which follows the CPU count).
 * `startInProcessApp` refuses to start where the value is not pinned.
 */
const WORKER_TESTS = [
  'src/service-processing.test.ts',
  'src/service-delivery.test.ts',
  'src/service-tasks.test.ts',
  'src/http/security-tokens.test.ts',
  'src/http/security-ssrf.test.ts',
];

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
          exclude: [...configDefaults.exclude, ...PROCESS_TESTS, ...WORKER_TESTS],
          setupFiles: UNIT_SETUP,
        },
      },
      ...(['on', 'off'] as const).map((outboundThread) => ({
        extends: true as const,
        test: {
          name: `unit-thread-${outboundThread}`,
          include: WORKER_TESTS,
          setupFiles: UNIT_SETUP,
          env: { OUTBOUND_THREAD: outboundThread },
        },
      })),
      {
        extends: true,
        test: {
          name: 'processes',
          include: PROCESS_TESTS,
          exclude: [...configDefaults.exclude, ...RATIO_TESTS],
        },
      },
      {
        extends: true,
        test: {
          name: 'ratios',
          include: RATIO_TESTS,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
