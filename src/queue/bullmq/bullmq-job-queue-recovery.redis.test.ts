/** The BullMQ driver on a real redis-server: closed or killed workers, cut-short enqueues, Redis down. */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { expectUnavailableWhileStopped } from '../../../test/support/redis-server.js';
import { hasExited, waitFor } from '../../dev/harness.js';
import type { Job, JobQueue } from '../job-queue.js';
import { useBullmqTestQueues } from './bullmq-job-queue.test-support.js';

const redis = useBullmqTestQueues();
const { openQueue, closeQueue, children, dir } = redis;

/**
 * A worker in a child process on `prefix` (1 s locks) whose handler is `handlerBody` (the source
 * of an async function of `job`, which prints `started <id>` first): it enqueues `victim` and then
 * `behind`, both in group `g`, and resolves once its output holds `ready` and `enqueued`.
 */
async function startChildWorker(prefix: string, handlerBody: string, ready: string): Promise<ChildProcess> {
  // .mts: an ES module wherever it lives (top-level await).
  const script = join(dir, `worker-${randomUUID()}.mts`);
  const modulePath = fileURLToPath(new URL('./bullmq-job-queue.ts', import.meta.url));
  writeFileSync(
    script,
    `import { createBullmqJobQueue } from ${JSON.stringify(modulePath)};
const queue = createBullmqJobQueue({ url: ${JSON.stringify(redis.server.url)}, prefix: ${JSON.stringify(prefix)}, lockDurationMs: 1000, stalledIntervalMs: 300 });
queue.consume(async (job) => { process.stdout.write('started ' + job.id + '\\n'); ${handlerBody} }, { concurrency: 1 });
await queue.enqueue({ id: 'victim', name: 'generate', taskId: 't', group: 'g' });
await queue.enqueue({ id: 'behind', name: 'generate', taskId: 't2', group: 'g' });
process.stdout.write('enqueued\\n');
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  await waitFor(
    () => output.includes(ready) && output.includes('enqueued'),
    () => `the child worker to enqueue both jobs and print "${ready}"; child output: ${output}`,
    { timeoutMs: 30_000 },
  );
  return child;
}

async function killChild(child: ChildProcess): Promise<void> {
  child.kill('SIGKILL');
  await waitFor(() => hasExited(child), 'the child to die');
  children.delete(child);
}

/** Consumes `queue` two at a time, recording every run, each done at once. */
function recordRuns(queue: JobQueue): Job[] {
  const runs: Job[] = [];
  queue.consume(
    async (job) => {
      runs.push(job);
      return { type: 'done' };
    },
    { concurrency: 2 },
  );
  return runs;
}

/**
 * A queue on `options` whose one slot starts `head` (then `next`, in the same group) and never
 * ends its run until `release`; `yields`: the run yields its slot first.
 */
async function stuckConsumer(
  options: { prefix: string; lockDurationMs: number; stalledIntervalMs: number },
  yields: boolean,
): Promise<{ queue: JobQueue; runs: Job[]; release: () => void }> {
  const queue = openQueue(options);
  let release = (): void => {};
  const stuck = new Promise<void>((resolve) => {
    release = resolve;
  });
  const runs: Job[] = [];
  queue.consume(
    async (job) => {
      runs.push(job);
      if (yields) job.yieldSlot();
      await stuck;
      return { type: 'done' };
    },
    { concurrency: 1 },
  );
  await queue.enqueue({ id: 'head', name: 'generate', taskId: 't1', group: 'g' });
  await queue.enqueue({ id: 'next', name: 'generate', taskId: 't2', group: 'g' });
  await waitFor(async () => runs.length === 1 && (await queue.counts()).active === 1, 'the first run');
  return { queue, runs, release };
}

/** The survivor ran the stuck consumer's job again (attempt 2) and then the next; the stuck run was the only one there. */
async function expectHandedOver(runs: Job[], dying: { runs: Job[]; release: () => void }): Promise<void> {
  await waitFor(() => runs.length === 2, 'the survivor to run both jobs');
  dying.release();
  expect(runs.map((job) => [job.id, job.attempt])).toEqual([
    ['head', 2],
    ['next', 1],
  ]);
  expect(dying.runs).toHaveLength(1);
}

describe('bullmq job queue', () => {
  it('hands a job cut off by a forced close to the other consumer, with attempt + 1', async () => {
    const options = { prefix: `t-${randomUUID()}`, lockDurationMs: 1000, stalledIntervalMs: 300 };
    const dying = await stuckConsumer(options, false);
    const runs = recordRuns(openQueue(options));
    await closeQueue(dying.queue, 50);
    await expectHandedOver(runs, dying);
  });

  it('recovers the job of a SIGKILLed worker through stalled-job recovery', async () => {
    const prefix = `t-${randomUUID()}`;
    const child = await startChildWorker(prefix, 'return new Promise(() => {});', 'started victim');
    await killChild(child);

    const runs = recordRuns(openQueue({ prefix, lockDurationMs: 1000, stalledIntervalMs: 300 }));
    await waitFor(() => runs.length === 2, 'the survivor to run the dead worker job and the next one');
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['victim', 2],
      ['behind', 1],
    ]);
  });

  it('acknowledges a run that yields its slot, holds it, and runs it again once its SIGKILLed worker stops renewing the hold', async () => {
    const prefix = `t-${randomUUID()}`;
    const child = await startChildWorker(
      prefix,
      "job.yieldSlot(); process.stdout.write('yielded ' + job.id + '\\n'); return new Promise(() => {});",
      'yielded victim',
    );
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.server.url);
    try {
      const entry = await raw.hget(`${prefix}:jobs:lw:jobs`, 'victim');
      const bullId = entry?.slice(0, entry.indexOf('|')) ?? '';
      expect(bullId).toMatch(/^j/);
      // Acknowledged to BullMQ (its job is gone from there), held in the registry meanwhile.
      await waitFor(
        async () => (await raw.exists(`${prefix}:jobs:${bullId}`)) === 0,
        'the early acknowledgement',
      );
      expect(Number(await raw.zscore(`${prefix}:jobs:lw:pending`, 'victim'))).toBeGreaterThan(Date.now());
      const observer = openQueue({ prefix });
      expect(await observer.counts()).toEqual({ waiting: 1, active: 1, delayed: 0 });
      await closeQueue(observer);
    } finally {
      raw.disconnect();
    }
    // Its hold is renewed while the child lives: nobody runs it meanwhile.
    const runs = recordRuns(
      openQueue({ prefix, lockDurationMs: 1000, stalledIntervalMs: 300, repairIntervalMs: 200 }),
    );
    await new Promise((resolve) => setTimeout(resolve, 4500));
    expect(runs).toEqual([]);
    await killChild(child);
    await waitFor(() => runs.length === 2, 'the survivor to run the held job and the next one', {
      timeoutMs: 15_000,
    });
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['victim', 2],
      ['behind', 1],
    ]);
  });

  it('hands a held run back at a close that times out: the other consumer runs it, with attempt + 1', async () => {
    const options = { prefix: `t-${randomUUID()}`, lockDurationMs: 1000, stalledIntervalMs: 300 };
    const dying = await stuckConsumer(options, true);
    await closeQueue(dying.queue, 50);
    // Its hold was released at once, not a lock duration later: the next sweep may add it back.
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.server.url);
    try {
      const pendingGraceMs = 3000;
      expect(Number(await raw.zscore(`${options.prefix}:jobs:lw:pending`, 'head'))).toBeLessThanOrEqual(
        Date.now() - pendingGraceMs,
      );
    } finally {
      raw.disconnect();
    }
    const runs = recordRuns(openQueue({ ...options, repairIntervalMs: 200 }));
    await expectHandedOver(runs, dying);
  });

  it('re-adds a job whose enqueue died between the registry and BullMQ', async () => {
    const prefix = `t-${randomUUID()}`;
    const queue = openQueue({ prefix });
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.server.url);
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
      redis.server,
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
