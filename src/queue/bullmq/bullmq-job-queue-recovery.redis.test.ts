/** The BullMQ driver on a real redis-server: closed or killed workers, cut-short enqueues, Redis down. */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { expectUnavailableWhileStopped } from '../../../test/support/redis-server.js';
import { hasExited, waitFor } from '../../dev/harness.js';
import type { Job } from '../job-queue.js';
import { useBullmqTestQueues } from './bullmq-job-queue.test-support.js';

const redis = useBullmqTestQueues();
const { openQueue, closeQueue, children, dir } = redis;

describe('bullmq job queue', () => {
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

  it('recovers the job of a SIGKILLed worker through stalled-job recovery', async () => {
    const prefix = `t-${randomUUID()}`;
    // .mts: an ES module wherever it lives (top-level await).
    const script = join(dir, `worker-${randomUUID()}.mts`);
    const modulePath = fileURLToPath(new URL('./bullmq-job-queue.ts', import.meta.url));
    writeFileSync(
      script,
      `import { createBullmqJobQueue } from ${JSON.stringify(modulePath)};
const queue = createBullmqJobQueue({ url: ${JSON.stringify(redis.server.url)}, prefix: ${JSON.stringify(prefix)}, lockDurationMs: 1000, stalledIntervalMs: 300 });
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

  it('acknowledges a run that yields its slot, holds it, and runs it again once its SIGKILLed worker stops renewing the hold', async () => {
    const prefix = `t-${randomUUID()}`;
    const script = join(dir, `worker-${randomUUID()}.mts`);
    const modulePath = fileURLToPath(new URL('./bullmq-job-queue.ts', import.meta.url));
    writeFileSync(
      script,
      `import { createBullmqJobQueue } from ${JSON.stringify(modulePath)};
const queue = createBullmqJobQueue({ url: ${JSON.stringify(redis.server.url)}, prefix: ${JSON.stringify(prefix)}, lockDurationMs: 1000, stalledIntervalMs: 300 });
queue.consume(async (job) => { job.yieldSlot(); process.stdout.write('yielded ' + job.id + '\\n'); return new Promise(() => {}); }, { concurrency: 1 });
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
      () => output.includes('yielded victim') && output.includes('enqueued'),
      () => `the child worker to enqueue both jobs and yield in the first; child output: ${output}`,
      { timeoutMs: 30_000 },
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
    const survivor = openQueue({
      prefix,
      lockDurationMs: 1000,
      stalledIntervalMs: 300,
      repairIntervalMs: 200,
    });
    const runs: Job[] = [];
    survivor.consume(
      async (job) => {
        runs.push(job);
        return { type: 'done' };
      },
      { concurrency: 2 },
    );
    await new Promise((resolve) => setTimeout(resolve, 4500));
    expect(runs).toEqual([]);
    child.kill('SIGKILL');
    await waitFor(() => hasExited(child), 'the child to die');
    children.delete(child);
    await waitFor(() => runs.length === 2, 'the survivor to run the held job and the next one', {
      timeoutMs: 15_000,
    });
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['victim', 2],
      ['behind', 1],
    ]);
  });

  it('hands a held run back at a close that times out: the other consumer runs it, with attempt + 1', async () => {
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
        job.yieldSlot();
        await stuck;
        return { type: 'done' };
      },
      { concurrency: 1 },
    );
    await dying.enqueue({ id: 'head', name: 'generate', taskId: 't1', group: 'g' });
    await dying.enqueue({ id: 'next', name: 'generate', taskId: 't2', group: 'g' });
    await waitFor(async () => (await dying.counts()).active === 1 && dyingRuns.length === 1, 'the held run');
    await closeQueue(dying, 50);
    // Its hold was released at once, not a lock duration later: the next sweep may add it back.
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.server.url);
    try {
      const pendingGraceMs = 3000;
      expect(Number(await raw.zscore(`${prefix}:jobs:lw:pending`, 'head'))).toBeLessThanOrEqual(
        Date.now() - pendingGraceMs,
      );
    } finally {
      raw.disconnect();
    }

    const survivor = openQueue({ ...options, repairIntervalMs: 200 });
    const runs: Job[] = [];
    survivor.consume(
      async (job) => {
        runs.push(job);
        return { type: 'done' };
      },
      { concurrency: 2 },
    );
    await waitFor(() => runs.length === 2, 'the survivor to run both jobs');
    release();
    expect(runs.map((job) => [job.id, job.attempt])).toEqual([
      ['head', 2],
      ['next', 1],
    ]);
    expect(dyingRuns).toHaveLength(1);
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
