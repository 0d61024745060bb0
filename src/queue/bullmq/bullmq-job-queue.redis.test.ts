import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectUnavailableWhileStopped,
  type RedisServer,
  startRedisServer,
} from '../../../test/support/redis-server.js';
import { createRedisClient } from '../../backends/redis/redis-connection.js';
import { hasExited, waitFor } from '../../dev/harness.js';
import { defineJobQueueContractTests } from '../job-queue.contract.js';
import type { Job, JobQueue } from '../job-queue.js';
import { type BullmqJobQueueOptions, createBullmqJobQueue } from './bullmq-job-queue.js';

let server: RedisServer;
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

function openQueue(options: Partial<BullmqJobQueueOptions> & { prefix: string }): JobQueue {
  const queue = createBullmqJobQueue({ url: server.url, repairIntervalMs: 500, ...options });
  open.add(queue);
  return queue;
}

async function closeQueue(queue: JobQueue, timeoutMs = 0): Promise<void> {
  await queue.close({ timeoutMs });
  open.delete(queue);
}

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
    const redis = createRedisClient(server.url, { role: 'command' });
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

  it('hands a job cut off by a forced close to the other consumer, with attempt + 1', async () => {
    const prefix = `t-${randomUUID()}`;
    const options = { prefix, lockDurationMs: 1000, stalledIntervalMs: 300 };
    const dying = openQueue(options);
    let release = (): void => {};
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    const dyingRuns: Job[] = [];
    dying.consume(
      async (job) => {
        dyingRuns.push(job);
        await stuck;
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    await dying.enqueue({ id: 'head', name: 'generate', taskId: 't1', group: 'g' });
    await dying.enqueue({ id: 'next', name: 'generate', taskId: 't2', group: 'g' });
    await waitFor(() => dyingRuns.length === 1, 'the first consumer to start the job');

    const survivor = openQueue(options);
    const runs: Job[] = [];
    survivor.consume(
      async (job) => {
        runs.push(job);
        return { type: 'done' };
      },
      { concurrency: 2 },
    );
    await closeQueue(dying, 50);
    await waitFor(() => runs.length === 2, 'the survivor to run both jobs');
    release();
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['head', 2],
      ['next', 1],
    ]);
    expect(dyingRuns).toHaveLength(1);
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

  it('recovers the job of a SIGKILLed worker through stalled-job recovery', async () => {
    const prefix = `t-${randomUUID()}`;
    // .mts: an ES module wherever it lives (top-level await).
    const script = join(dir, `worker-${randomUUID()}.mts`);
    const modulePath = fileURLToPath(new URL('./bullmq-job-queue.ts', import.meta.url));
    writeFileSync(
      script,
      `import { createBullmqJobQueue } from ${JSON.stringify(modulePath)};
const queue = createBullmqJobQueue({ url: ${JSON.stringify(server.url)}, prefix: ${JSON.stringify(prefix)}, lockDurationMs: 1000, stalledIntervalMs: 300 });
queue.consume(async (job) => { process.stdout.write('started ' + job.id + '\\n'); return new Promise(() => {}); }, { concurrency: 1 });
await queue.enqueue({ id: 'victim', name: 'generate', taskId: 't', group: 'g' });
await queue.enqueue({ id: 'behind', name: 'generate', taskId: 't2', group: 'g' });
process.stdout.write('enqueued\\n');
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    await waitFor(
      () => output.includes('started victim') && output.includes('enqueued'),
      () => `the child worker to enqueue both jobs and start the first; child output: ${output}`,
      { timeoutMs: 30_000 },
    );
    child.kill('SIGKILL');
    await waitFor(() => hasExited(child), 'the child to die');
    children.delete(child);

    const survivor = openQueue({ prefix, lockDurationMs: 1000, stalledIntervalMs: 300 });
    const runs: Job[] = [];
    survivor.consume(
      async (job) => {
        runs.push(job);
        return { type: 'done' };
      },
      { concurrency: 2 },
    );
    await waitFor(() => runs.length === 2, 'the survivor to run the dead worker job and the next one');
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['victim', 2],
      ['behind', 1],
    ]);
  });

  it('re-adds a job whose enqueue died between the registry and BullMQ', async () => {
    const prefix = `t-${randomUUID()}`;
    const queue = openQueue({ prefix });
    const { Redis } = await import('ioredis');
    const raw = new Redis(server.url);
    try {
      // What an API process leaves behind when it dies right after the enqueue script.
      const since = Date.now() - 60_000;
      const entry = {
        id: 'orphan',
        name: 'deliver',
        taskId: 't',
        group: null,
        bullId: `j${randomUUID()}`,
        runAtMs: since,
      };
      await raw.hset(`${prefix}:jobs:lw:jobs`, 'orphan', `${entry.bullId}|${JSON.stringify(entry)}`);
      await raw.zadd(`${prefix}:jobs:lw:pending`, since, 'orphan');
    } finally {
      raw.disconnect();
    }
    expect(await queue.counts()).toEqual({ waiting: 1, active: 0, delayed: 0 });
    const runs: string[] = [];
    queue.consume(
      async (job) => {
        runs.push(job.id);
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    await waitFor(() => runs.length === 1, 'the orphan to run');
    expect(runs).toEqual(['orphan']);
  });

  it('rejects with BackendUnavailableError within 2 s while Redis is down, and works after a restart', async () => {
    const prefix = `t-${randomUUID()}`;
    const queue = openQueue({ prefix });
    await queue.ping();
    expect(await queue.enqueue({ id: 'before', name: 'generate', taskId: 't' })).toBe(true);
    await expectUnavailableWhileStopped(
      server,
      [
        () => queue.enqueue({ id: `down-${randomUUID()}`, name: 'generate', taskId: 't' }),
        () => queue.ping(),
      ],
      () => queue.ping(),
    );
    const runs: string[] = [];
    queue.consume(
      async (job) => {
        runs.push(job.id);
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    expect(await queue.enqueue({ id: 'after', name: 'generate', taskId: 't' })).toBe(true);
    await waitFor(() => runs.includes('after'), 'a job enqueued after the restart');
  });
});
