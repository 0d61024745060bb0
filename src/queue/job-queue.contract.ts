/**
 * The behavioural suite every `JobQueue` driver runs against its real backend. It tests only what
 * job-queue.ts promises, so any driver that passes can stand behind the seam.
 *
 * The factory returns a fresh, empty queue per test. With `reopen`, the suite also checks
 * hand-back: `reopen()` must return a new queue over the same durable state (as a restarted
 * process would see it), after the test has closed the first one.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../dev/harness.js';
import { PermanentJobError } from '../shared/errors.js';
import type { Job, JobQueue, JobResult } from './job-queue.js';

export type JobQueueContractFactory = () => Promise<{
  queue: JobQueue;
  reopen?: () => Promise<JobQueue>;
  cleanup: () => Promise<void>;
}>;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise the test opens when it chooses. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

const done: JobResult = { type: 'done' };

async function idle(queue: JobQueue): Promise<void> {
  await waitFor(async () => {
    const counts = await queue.counts();
    return counts.waiting + counts.active + counts.delayed === 0;
  }, 'the queue to be empty');
}

export function defineJobQueueContractTests(name: string, factory: JobQueueContractFactory): void {
  const withQueue = async (
    run: (queue: JobQueue, reopen: (() => Promise<JobQueue>) | undefined) => Promise<void>,
  ): Promise<void> => {
    const { queue, reopen, cleanup } = await factory();
    try {
      await run(queue, reopen);
    } finally {
      await cleanup();
    }
  };
  const id = (label: string): string => `${label}-${randomUUID()}`;

  describe(`JobQueue contract: ${name}`, () => {
    it('runs each enqueued job exactly once when its handler returns done', () =>
      withQueue(async (queue) => {
        const runs = new Map<string, Job[]>();
        const ids = Array.from({ length: 20 }, (_, index) => id(`job${index}`));
        for (const jobId of ids.slice(0, 10)) {
          expect(await queue.enqueue({ id: jobId, name: 'generate', taskId: `task-${jobId}` })).toBe(true);
        }
        queue.consume(
          async (job) => {
            runs.set(job.id, [...(runs.get(job.id) ?? []), job]);
            return done;
          },
          { concurrency: 5 },
        );
        for (const jobId of ids.slice(10)) {
          expect(await queue.enqueue({ id: jobId, name: 'deliver', taskId: `task-${jobId}` })).toBe(true);
        }
        await waitFor(() => runs.size === ids.length, 'every job to run');
        await idle(queue);
        for (const [index, jobId] of ids.entries()) {
          expect(runs.get(jobId)).toEqual([
            {
              id: jobId,
              name: index < 10 ? 'generate' : 'deliver',
              taskId: `task-${jobId}`,
              group: null,
              attempt: 1,
              trace: null,
              yieldSlot: expect.any(Function),
            },
          ]);
        }
      }));

    it('ignores an enqueue whose id still exists', () =>
      withQueue(async (queue) => {
        const group = id('group');
        const first = id('first');
        const marker = id('marker');
        const runs: string[] = [];
        expect(await queue.enqueue({ id: first, name: 'generate', taskId: 't1', group })).toBe(true);
        expect(await queue.enqueue({ id: first, name: 'generate', taskId: 't1', group })).toBe(false);
        expect(await queue.enqueue({ id: marker, name: 'generate', taskId: 't2', group })).toBe(true);
        queue.consume(
          async (job) => {
            runs.push(job.id);
            return done;
          },
          { concurrency: 2 },
        );
        await waitFor(() => runs.includes(marker), 'the marker job');
        await idle(queue);
        expect(runs).toEqual([first, marker]);
      }));

    it('does not run a delayed job before its delay', () =>
      withQueue(async (queue) => {
        const ranAt = new Map<string, number>();
        queue.consume(
          async (job) => {
            ranAt.set(job.id, Date.now());
            return done;
          },
          { concurrency: 2 },
        );
        const delayedId = id('delayed');
        const nowId = id('now');
        const enqueuedAt = Date.now();
        expect(await queue.enqueue({ id: delayedId, name: 'generate', taskId: 't', delayMs: 300 })).toBe(
          true,
        );
        expect(await queue.enqueue({ id: nowId, name: 'generate', taskId: 't' })).toBe(true);
        await waitFor(() => ranAt.has(delayedId), 'the delayed job');
        expect(ranAt.get(delayedId)! - enqueuedAt).toBeGreaterThanOrEqual(295);
        expect(ranAt.get(nowId)!).toBeLessThanOrEqual(ranAt.get(delayedId)!);
      }));

    it('runs a job that asked for a retry again, with attempt + 1, after the delay', () =>
      withQueue(async (queue) => {
        const runs: Array<{ attempt: number; at: number }> = [];
        queue.consume(
          async (job) => {
            runs.push({ attempt: job.attempt, at: Date.now() });
            return job.attempt === 1 ? { type: 'retry', delayMs: 300 } : done;
          },
          { concurrency: 1 },
        );
        await queue.enqueue({ id: id('retry'), name: 'generate', taskId: 't' });
        await waitFor(() => runs.length === 2, 'the retry');
        await idle(queue);
        expect(runs.map((run) => run.attempt)).toEqual([1, 2]);
        expect(runs[1]!.at - runs[0]!.at).toBeGreaterThanOrEqual(295);
      }));

    it('runs again, after the delay and with attempt + 1, a job that yielded its slot and then asked for a retry; its group waits', () =>
      withQueue(async (queue) => {
        const group = id('group');
        const yielding = id('yielding');
        const behind = id('behind');
        const runs: Array<{ id: string; attempt: number; at: number }> = [];
        queue.consume(
          async (job) => {
            runs.push({ id: job.id, attempt: job.attempt, at: Date.now() });
            if (job.id !== yielding || job.attempt > 1) return done;
            job.yieldSlot();
            await sleep(50);
            return { type: 'retry', delayMs: 300 };
          },
          { concurrency: 1 },
        );
        await queue.enqueue({ id: yielding, name: 'generate', taskId: 't1', group });
        await queue.enqueue({ id: behind, name: 'generate', taskId: 't2', group });
        await waitFor(() => runs.length === 3, 'the retry and the job behind it', { timeoutMs: 30_000 });
        await idle(queue);
        expect(runs.map((run) => [run.id, run.attempt])).toEqual([
          [yielding, 1],
          [yielding, 2],
          [behind, 1],
        ]);
        expect(runs[1]!.at - runs[0]!.at).toBeGreaterThanOrEqual(345);
      }));

    it('hands every run of a job the trace carrier it was enqueued with', () =>
      withQueue(async (queue) => {
        const carrier = {
          traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
          tracestate: 'vendor=x',
        };
        const runs: Job[] = [];
        queue.consume(
          async (job) => {
            runs.push(job);
            return job.attempt === 1 ? { type: 'retry', delayMs: 10 } : done;
          },
          { concurrency: 2 },
        );
        const traced = id('traced');
        const plain = id('plain');
        await queue.enqueue({ id: traced, name: 'generate', taskId: 't1', group: id('g'), trace: carrier });
        await queue.enqueue({ id: plain, name: 'deliver', taskId: 't2' });
        await waitFor(() => runs.length === 4, 'two runs of each job');
        await idle(queue);
        expect(runs.filter((job) => job.id === traced).map((job) => [job.attempt, job.trace])).toEqual([
          [1, carrier],
          [2, carrier],
        ]);
        expect(runs.filter((job) => job.id === plain).map((job) => job.trace)).toEqual([null, null]);
      }));

    it('ends a job whose handler throws PermanentJobError', () =>
      withQueue(async (queue) => {
        const group = id('group');
        const doomed = id('doomed');
        const marker = id('marker');
        const runs: string[] = [];
        queue.consume(
          async (job) => {
            runs.push(job.id);
            if (job.id === doomed) throw new PermanentJobError('no point retrying');
            return done;
          },
          { concurrency: 2 },
        );
        await queue.enqueue({ id: doomed, name: 'generate', taskId: 't', group });
        await queue.enqueue({ id: marker, name: 'generate', taskId: 't', group });
        // The marker waits behind the doomed job in its group: once it ran, the doomed one has ended.
        await waitFor(() => runs.includes(marker), 'the job behind the failed one');
        await idle(queue);
        expect(runs).toEqual([doomed, marker]);
      }));

    it('retries a job whose handler throws anything else', () =>
      withQueue(async (queue) => {
        const attempts: number[] = [];
        queue.consume(
          async (job) => {
            attempts.push(job.attempt);
            if (job.attempt === 1) throw new Error('transient');
            return done;
          },
          { concurrency: 1 },
        );
        await queue.enqueue({ id: id('flaky'), name: 'deliver', taskId: 't' });
        await waitFor(() => attempts.length === 2, 'the retry after a throw');
        await idle(queue);
        expect(attempts).toEqual([1, 2]);
      }));

    it('runs up to `concurrency` jobs at once, never more', () =>
      withQueue(async (queue) => {
        const concurrency = 4;
        let running = 0;
        let peak = 0;
        let finished = 0;
        queue.consume(
          async () => {
            running++;
            peak = Math.max(peak, running);
            // Hold the slot until every slot has been taken once (or a while has passed).
            const deadline = Date.now() + 5000;
            while (peak < concurrency && Date.now() < deadline) await sleep(5);
            await sleep(5);
            running--;
            finished++;
            return done;
          },
          { concurrency },
        );
        for (let index = 0; index < 16; index++) {
          await queue.enqueue({ id: id(`c${index}`), name: 'generate', taskId: 't' });
        }
        await waitFor(() => finished === 16, 'every job to finish');
        expect(peak).toBe(concurrency);
      }));

    it('runs the jobs of one group one at a time in enqueue order, groups in parallel', () =>
      withQueue(async (queue) => {
        const groups = ['a', 'b', 'c'].map((label) => id(`group-${label}`));
        const order = new Map<string, number[]>(groups.map((group) => [group, []]));
        const busy = new Set<string>();
        let overlapping = 0;
        let running = 0;
        let peak = 0;
        let finished = 0;
        queue.consume(
          async (job) => {
            const group = job.group!;
            if (busy.has(group)) overlapping++;
            busy.add(group);
            running++;
            peak = Math.max(peak, running);
            order.get(group)!.push(Number(job.taskId));
            await sleep(5 + (Number(job.taskId) % 4) * 5);
            running--;
            busy.delete(group);
            finished++;
            return done;
          },
          { concurrency: 6 },
        );
        for (let index = 0; index < 30; index++) {
          await queue.enqueue({
            id: id(`g${index}`),
            name: 'generate',
            taskId: String(index),
            group: groups[index % 3]!,
          });
        }
        await waitFor(() => finished === 30, 'every grouped job');
        expect(overlapping).toBe(0);
        for (const [position, group] of groups.entries()) {
          expect(order.get(group)).toEqual(Array.from({ length: 10 }, (_, index) => index * 3 + position));
        }
        expect(peak).toBeGreaterThan(1);
      }));

    it('keeps a group blocked while its head waits for a retry', () =>
      withQueue(async (queue) => {
        const group = id('group');
        const events: string[] = [];
        const enqueued = gate();
        queue.consume(
          async (job) => {
            events.push(`${job.taskId}#${job.attempt}`);
            if (job.taskId === 'head' && job.attempt === 1) {
              // Ask for the retry only once the next job is queued behind this one.
              await enqueued.wait;
              return { type: 'retry', delayMs: 400 };
            }
            return done;
          },
          { concurrency: 4 },
        );
        await queue.enqueue({ id: id('head'), name: 'generate', taskId: 'head', group });
        await queue.enqueue({ id: id('next'), name: 'generate', taskId: 'next', group });
        await queue.enqueue({ id: id('other'), name: 'generate', taskId: 'other', group: id('other-group') });
        enqueued.open();
        await waitFor(() => events.includes('next#1'), 'the job behind the retrying head');
        expect(events.filter((event) => event !== 'other#1')).toEqual(['head#1', 'head#2', 'next#1']);
        // Another group is not held up by this one's retry.
        expect(events.indexOf('other#1')).toBeLessThan(events.indexOf('head#2'));
      }));

    it('starts another job in the place of a run that yields its slot, and keeps its group blocked until it returns', () =>
      withQueue(async (queue) => {
        const group = id('group');
        const yielding = id('yielding');
        const behind = id('behind');
        const other = id('other');
        const release = gate();
        const started: string[] = [];
        const ended: string[] = [];
        let running = 0;
        let peak = 0;
        queue.consume(
          async (job) => {
            started.push(job.id);
            if (job.id === yielding) {
              job.yieldSlot();
              job.yieldSlot(); // a second call gives nothing more back
              await release.wait;
            } else {
              running++;
              peak = Math.max(peak, running);
              await sleep(20);
              running--;
            }
            ended.push(job.id);
            return done;
          },
          { concurrency: 1 },
        );
        await queue.enqueue({ id: yielding, name: 'generate', taskId: 't1', group });
        await waitFor(() => started.includes(yielding), 'the yielding run');
        await queue.enqueue({ id: behind, name: 'generate', taskId: 't2', group });
        await queue.enqueue({ id: other, name: 'generate', taskId: 't3' });
        // At a concurrency of 1, the other job runs while the yielding one still waits.
        await waitFor(() => ended.includes(other), 'the job started in the yielded place');
        expect(started).not.toContain(behind);
        release.open();
        await waitFor(() => ended.includes(behind), 'the group to go on');
        await idle(queue);
        expect(ended).toEqual([other, yielding, behind]);
        // The place is taken back when the run ends: one job at a time again.
        peak = 0;
        const later = Array.from({ length: 4 }, (_, index) => id(`later${index}`));
        for (const jobId of later) await queue.enqueue({ id: jobId, name: 'generate', taskId: jobId });
        await waitFor(() => later.every((jobId) => ended.includes(jobId)), 'the later jobs');
        expect(peak).toBe(1);
      }));

    it('says whether a group has jobs waiting, delayed or running', () =>
      withQueue(async (queue) => {
        const group = id('group');
        const release = gate();
        const ran: string[] = [];
        queue.consume(
          async (job) => {
            ran.push(job.id);
            if (job.attempt === 1 && job.id.startsWith('delayed')) return { type: 'retry', delayMs: 200 };
            await release.wait;
            return done;
          },
          { concurrency: 2 },
        );
        expect(await queue.groupPending(group)).toBe(false);
        const running = id('running');
        await queue.enqueue({ id: running, name: 'deliver', taskId: 't1', group });
        await waitFor(() => ran.includes(running), 'the job to run');
        expect(await queue.groupPending(group)).toBe(true);
        expect(await queue.groupPending(id('other-group'))).toBe(false);
        release.open();
        await idle(queue);
        expect(await queue.groupPending(group)).toBe(false);
        const delayed = id('delayed');
        await queue.enqueue({ id: delayed, name: 'deliver', taskId: 't2', group });
        await waitFor(() => ran.includes(delayed), 'the first run of the delayed job');
        expect(await queue.groupPending(group)).toBe(true);
        await idle(queue);
        expect(await queue.groupPending(group)).toBe(false);
      }));

    it('runs waiting first-priority jobs (deliveries) before normal ones (generations), each in enqueue order', () =>
      withQueue(async (queue) => {
        const generations = [1, 2, 3].map((n) => id(`gen${n}`));
        const deliveries = [1, 2].map((n) => id(`deliver${n}`));
        for (const [n, jobId] of generations.entries()) {
          await queue.enqueue({ id: jobId, name: 'generate', taskId: 't', group: id(`c${n}`) });
        }
        for (const jobId of deliveries) {
          await queue.enqueue({ id: jobId, name: 'deliver', taskId: 't', priority: 'first' });
        }
        const order: string[] = [];
        queue.consume(
          async (job) => {
            order.push(job.id);
            return done;
          },
          { concurrency: 1 },
        );
        await waitFor(() => order.length === 5, 'every job');
        expect(order).toEqual([...deliveries, ...generations]);
      }));

    it('counts waiting, active and delayed jobs', () =>
      withQueue(async (queue) => {
        const release = gate();
        const started: string[] = [];
        await queue.enqueue({ id: id('w1'), name: 'generate', taskId: 't' });
        await queue.enqueue({ id: id('w2'), name: 'generate', taskId: 't' });
        await queue.enqueue({ id: id('later'), name: 'generate', taskId: 't', delayMs: 120_000 });
        expect(await queue.counts()).toEqual({ waiting: 2, active: 0, delayed: 1 });
        try {
          queue.consume(
            async (job) => {
              started.push(job.id);
              await release.wait;
              return done;
            },
            { concurrency: 1 },
          );
          await waitFor(() => started.length === 1, 'the first job to start');
          await waitFor(async () => {
            const counts = await queue.counts();
            return counts.active === 1 && counts.waiting === 1 && counts.delayed === 1;
          }, 'one active, one waiting, one delayed');
        } finally {
          release.open();
        }
        await waitFor(() => started.length === 2, 'the second job');
        await waitFor(async () => {
          const counts = await queue.counts();
          return counts.active === 0 && counts.waiting === 0 && counts.delayed === 1;
        }, 'only the delayed job left');
      }));

    it('waits in close() for a running handler', () =>
      withQueue(async (queue) => {
        let started = false;
        let finished = false;
        queue.consume(
          async () => {
            started = true;
            await sleep(300);
            finished = true;
            return done;
          },
          { concurrency: 1 },
        );
        await queue.enqueue({ id: id('slow'), name: 'generate', taskId: 't' });
        await waitFor(() => started, 'the handler to start');
        await queue.close({ timeoutMs: 10_000 });
        expect(finished).toBe(true);
        await queue.close({ timeoutMs: 10_000 });
      }));

    it('hands unfinished jobs back at close: they run after a restart', (context) =>
      withQueue(async (queue, reopen) => {
        if (reopen === undefined) {
          context.skip();
          return;
        }
        const group = id('group');
        const stuck = gate();
        const firstRuns: string[] = [];
        const slowId = id('slow');
        const behindId = id('behind');
        const laterId = id('later');
        const carrier = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
        try {
          queue.consume(
            async (job) => {
              firstRuns.push(job.id);
              await stuck.wait;
              return done;
            },
            { concurrency: 2 },
          );
          await queue.enqueue({ id: slowId, name: 'generate', taskId: 'slow', group, trace: carrier });
          await waitFor(() => firstRuns.includes(slowId), 'the slow job to start');
          await queue.enqueue({ id: behindId, name: 'generate', taskId: 'behind', group });
          await queue.enqueue({ id: laterId, name: 'deliver', taskId: 'later', delayMs: 500 });
          await queue.close({ timeoutMs: 200 });
          expect(firstRuns).toEqual([slowId]);

          const reopened = await reopen();
          const runs: Job[] = [];
          reopened.consume(
            async (job) => {
              runs.push(job);
              return done;
            },
            { concurrency: 4 },
          );
          await waitFor(() => runs.length === 3, 'the handed-back jobs to run after reopen');
          const ids = runs.map((job) => job.id);
          expect([...ids].sort()).toEqual([slowId, behindId, laterId].sort());
          expect(ids.indexOf(slowId)).toBeLessThan(ids.indexOf(behindId));
          expect(runs.find((job) => job.id === slowId)?.attempt).toBe(2);
          // The run after the restart keeps the job's trace.
          expect(runs.find((job) => job.id === slowId)?.trace).toEqual(carrier);
          expect(runs.find((job) => job.id === behindId)?.attempt).toBe(1);
          await idle(reopened);
        } finally {
          // The first handler finishes late; its result must change nothing.
          stuck.open();
        }
      }));

    it('answers ping', () =>
      withQueue(async (queue) => {
        await expect(queue.ping()).resolves.toBeUndefined();
      }));
  });
}
