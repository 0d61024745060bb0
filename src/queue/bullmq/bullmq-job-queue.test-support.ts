/** A real redis-server and the BullMQ queues of one driver test file, cleaned up after its last test. */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test/support/redis-server.js';
import type { JobQueue } from '../job-queue.js';
import { type BullmqJobQueueOptions, createBullmqJobQueue } from './bullmq-job-queue.js';

export interface BullmqTestQueues {
  /** The file's redis-server; it starts in `beforeAll`, so read it inside tests. */
  readonly server: RedisServer;
  /** A scratch directory, removed after the file's last test. */
  readonly dir: string;
  /** Child processes still running after the file's last test are SIGKILLed then. */
  readonly children: Set<ChildProcess>;
  /** A queue on the file's redis-server, force-closed after the last test if still open. */
  openQueue(options: Partial<BullmqJobQueueOptions> & { prefix: string }): JobQueue;
  closeQueue(queue: JobQueue, timeoutMs?: number): Promise<void>;
}

/** Registers hooks that start a redis-server before the file's first test and clean up after its last. */
export function useBullmqTestQueues(): BullmqTestQueues {
  let server: RedisServer | undefined;
  const open = new Set<JobQueue>();
  const children = new Set<ChildProcess>();
  const dir = mkdtempSync(join(tmpdir(), 'bullmq-job-queue-'));

  beforeAll(async () => {
    server = await startRedisServer();
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([...open].map((queue) => queue.close({ timeoutMs: 0 })));
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const started = (): RedisServer => {
    if (server === undefined) throw new Error('the redis-server starts in beforeAll: use it inside tests');
    return server;
  };

  return {
    get server() {
      return started();
    },
    dir,
    children,
    openQueue(options) {
      const queue = createBullmqJobQueue({ url: started().url, repairIntervalMs: 500, ...options });
      open.add(queue);
      return queue;
    },
    async closeQueue(queue, timeoutMs = 0) {
      await queue.close({ timeoutMs });
      open.delete(queue);
    },
  };
}
