/** The BullMQ driver against a real redis-server: the queue contract, group order across consumers, load. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createRedisClient } from '../../backends/redis/redis-connection.js';
import { waitFor } from '../../dev/harness.js';
import { defineJobQueueContractTests } from '../job-queue.contract.js';
import type { Job } from '../job-queue.js';
import { useBullmqTestQueues } from './bullmq-job-queue.test-support.js';

const queues = useBullmqTestQueues();
const { openQueue, closeQueue } = queues;

defineJobQueueContractTests('bullmq', async () => {
  const prefix = `t-${randomUUID()}`;
  let queue = openQueue({ prefix });
  return {
    queue,
    reopen: async () => {
      await closeQueue(queue);
      queue = openQueue({ prefix });
      return queue;
    },
    cleanup: () => closeQueue(queue),
  };
});

describe('BullMQ key layout that the Lua scripts read', () => {
  // llmwQueueSweepPending and llmwQueueSweepGroups decide whether a job is in BullMQ with
  // `EXISTS <prefix>:<queue>:<BullMQ id>`: BullMQ's private layout, which an upgrade may change.
  // If this test fails, the repair sweep would re-add (or never re-add) jobs: fix the scripts
  // before taking the upgrade.
  it('keeps a job as a hash at <prefix>:<queue>:<id> while it waits, is delayed or runs, and removes it when done', async () => {
    const prefix = `t-${randomUUID()}`;
    const base = `${prefix}:jobs`;
    const redis = createRedisClient(queues.server.url, { role: 'command' });
    const queue = openQueue({ prefix });
    try {
      const bullIdOf = async (id: string): Promise<string> => {
        const entry = await redis.hget(`${base}:lw:jobs`, id);
        expect(entry, `registry entry of ${id}`).toMatch(/^j[0-9a-f-]{36}\|/);
        return entry!.slice(0, entry!.indexOf('|'));
      };
      const layout = async (bullId: string) => ({
        type: await redis.type(`${base}:${bullId}`),
        name: await redis.hget(`${base}:${bullId}`, 'name'),
      });

      // Waiting: a normal job (BullMQ priority 1, in its prioritized set) and a first-priority
      // job (no BullMQ priority, in its wait list); delayed: a job with a delay.
      await queue.enqueue({ id: 'gen', name: 'generate', taskId: 't1', group: 'g' });
      await queue.enqueue({ id: 'del', name: 'deliver', taskId: 't2', priority: 'first' });
      await queue.enqueue({ id: 'later', name: 'deliver', taskId: 't3', delayMs: 60_000, priority: 'first' });
      const [gen, del, later] = await Promise.all(['gen', 'del', 'later'].map(bullIdOf));
      expect(await layout(gen!)).toEqual({ type: 'hash', name: 'generate' });
      expect(await layout(del!)).toEqual({ type: 'hash', name: 'deliver' });
      expect(await layout(later!)).toEqual({ type: 'hash', name: 'deliver' });
      expect(await redis.zscore(`${base}:prioritized`, gen!)).not.toBeNull();
      expect(await redis.lrange(`${base}:wait`, 0, -1)).toContain(del);
      expect(await redis.zscore(`${base}:delayed`, later!)).not.toBeNull();

      // Active: both immediate jobs held by a running handler.
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      const started = new Set<string>();
      queue.consume(
        async (job) => {
          started.add(job.id);
          await released;
          return { type: 'done' };
        },
        { concurrency: 4 },
      );
      await waitFor(() => started.size === 2, 'both immediate jobs to start');
      expect(await layout(gen!)).toEqual({ type: 'hash', name: 'generate' });
      expect(await layout(del!)).toEqual({ type: 'hash', name: 'deliver' });
      expect((await redis.lrange(`${base}:active`, 0, -1)).sort()).toEqual([gen, del].sort());

      // Done: the job's key is gone (removeOnComplete), which the sweeps read as "not in BullMQ".
      release();
      await waitFor(async () => (await redis.exists(`${base}:${gen}`, `${base}:${del}`)) === 0, 'removal');
      expect(await layout(later!)).toEqual({ type: 'hash', name: 'deliver' });
    } finally {
      redis.disconnect();
      await closeQueue(queue);
    }
  });
});

describe('bullmq job queue', () => {
  it('keeps group order across two consumers: 10 groups x 5 jobs', async () => {
    const prefix = `t-${randomUUID()}`;
    const first = openQueue({ prefix });
    const second = openQueue({ prefix });
    const groups = Array.from({ length: 10 }, (_, index) => `g${index}-${randomUUID()}`);
    const order = new Map<string, number[]>(groups.map((group) => [group, []]));
    const busy = new Set<string>();
    const ranBy = new Set<string>();
    let overlapping = 0;
    let finished = 0;
    const handler =
      (name: string) =>
      async (job: Job): Promise<{ type: 'done' }> => {
        const group = job.group!;
        if (busy.has(group)) overlapping++;
        busy.add(group);
        ranBy.add(name);
        order.get(group)!.push(Number(job.taskId));
        await new Promise((resolve) => setTimeout(resolve, 2 + (Number(job.taskId) % 3) * 4));
        busy.delete(group);
        finished++;
        return { type: 'done' };
      };
    first.consume(handler('first'), { concurrency: 4 });
    second.consume(handler('second'), { concurrency: 4 });
    // Enqueued from both instances, as from two API processes.
    for (let index = 0; index < 50; index++) {
      const via = index % 2 === 0 ? first : second;
      await via.enqueue({
        id: `job-${index}`,
        name: 'generate',
        taskId: String(index),
        group: groups[index % 10]!,
      });
    }
    await waitFor(() => finished === 50, 'all 50 jobs');
    expect(overlapping).toBe(0);
    for (const [position, group] of groups.entries()) {
      expect(order.get(group)).toEqual(Array.from({ length: 5 }, (_, index) => index * 10 + position));
    }
    expect(ranBy).toEqual(new Set(['first', 'second']));
    await waitFor(async () => (await first.counts()).waiting === 0, 'an empty queue');
  });

  it('runs every job once when its event loop is busy for longer than the command timeout', async () => {
    // A worker saturated by thousands of jobs used to fail the Redis commands Redis had already
    // answered (the reply waited unread while the loop was busy): enqueues were refused, jobs
    // restarted with attempt 2, and the retries loaded it further until nothing finished.
    const prefix = `t-${randomUUID()}`;
    const queue = openQueue({ prefix });
    const busyFor = (ms: number): void => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // busy
      }
    };
    await queue.ping();
    const accepted = queue.enqueue({ id: 'first', name: 'generate', taskId: 'first', group: 'g' });
    busyFor(2000);
    expect(await accepted).toBe(true);

    const total = 30;
    for (let index = 1; index < total; index++) {
      await queue.enqueue({ id: `job-${index}`, name: 'generate', taskId: String(index) });
    }
    const attempts = new Map<string, number[]>();
    let busied = false;
    queue.consume(
      async (job) => {
        attempts.set(job.id, [...(attempts.get(job.id) ?? []), job.attempt]);
        if (!busied) {
          busied = true;
          // After this turn's microtasks: other jobs' commands are in flight meanwhile.
          setImmediate(() => busyFor(2000));
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
        return { type: 'done' };
      },
      { concurrency: total },
    );
    await waitFor(() => attempts.size === total, 'every job to run');
    await waitFor(async () => {
      const counts = await queue.counts();
      return counts.waiting + counts.active + counts.delayed === 0;
    }, 'an empty queue');
    expect([...attempts.values()].filter((runs) => runs.length !== 1 || runs[0] !== 1)).toEqual([]);
  });

  it('runs a process concurrency above one BullMQ worker, all jobs at once', async () => {
    const queue = openQueue({ prefix: `t-${randomUUID()}` });
    const total = 450;
    for (let index = 0; index < total; index++) {
      await queue.enqueue({
        id: `job-${index}`,
        name: 'generate',
        taskId: String(index),
        group: `g${index}`,
      });
    }
    let started = 0;
    let release = (): void => {};
    const barrier = new Promise<void>((resolve) => {
      release = resolve;
    });
    let finished = 0;
    queue.consume(
      async () => {
        started++;
        if (started === total) release();
        await barrier;
        finished++;
        return { type: 'done' };
      },
      { concurrency: total },
    );
    await waitFor(() => finished === total, 'all jobs running together, then finished', {
      timeoutMs: 30_000,
    });
  });
});
