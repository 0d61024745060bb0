/**
 * Setup file of the `unit` projects (`npm run test:unit`): they must run with no redis-server
 * and start no process, so every way of our code to start one fails the test at once, naming
 * where such a test belongs. Threads (the outbound thread) are allowed.
 */
import { vi } from 'vitest';

vi.mock('node:child_process', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:child_process')>();
  const refuse =
    (name: string) =>
    (command: unknown): never => {
      throw new Error(
        `${name}(${JSON.stringify(command)}) in the unit subset, which starts no process: a test that ` +
          'needs redis-server goes in a *.redis.test.ts file, one that starts another process in a ' +
          '*.process.test.ts file or under test/e2e/ (see vitest.config.ts)',
      );
    };
  return {
    ...original,
    spawn: refuse('spawn'),
    spawnSync: refuse('spawnSync'),
    exec: refuse('exec'),
    execSync: refuse('execSync'),
    execFile: refuse('execFile'),
    execFileSync: refuse('execFileSync'),
    fork: refuse('fork'),
  };
});
