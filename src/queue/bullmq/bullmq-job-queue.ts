/**
 * The redis mode's `JobQueue` on BullMQ, and the only importer of `bullmq`. Loaded lazily by the
 * composition root, so the embedded mode never loads it.
 *
 * DESIGN
 *
 * BullMQ runs the jobs (locks, lock renewal, stalled-job recovery, delays, concurrency). Around
 * it, the group registry (`group-registry.ts`: the `lw:*` keys and their Lua scripts) gives the
 * seam deduplication and ordered groups; this file owns BullMQ's `Queue` and `Worker`s and the
 * processor, and starts the repair sweep (`repair-sweep.ts`). Each job gets a fresh BullMQ id from
 * the registry entry.
 *
 * - enqueue: the registry's enqueue script, then, when the job heads its group (or has none),
 *   the BullMQ add.
 * - run: the registry's start script (a stale copy is acknowledged without running), then the
 *   handler with the attempt number it returned.
 * - done / PermanentJobError: BEFORE the job is acknowledged to BullMQ, the registry's finish
 *   script; the group's next job is then added to BullMQ. Only then does the processor return.
 * - retry (or any other throw): `moveToDelayed` + `DelayedError`; the job stays the group head,
 *   so the group stays blocked until it ends. Its attempt counter lives in the registry.
 * - yieldSlot: the run is held in the registry's `lw:pending` (one `ZADD`, a lock duration ahead,
 *   renewed with the locks) and the processor returns, so BullMQ acknowledges the job and fetches
 *   the next one in that same round trip, as for any ended job; the handler goes on outside
 *   BullMQ, still the head of its group, and ends the job through the registry's finish script.
 *   (Raising the worker's concurrency instead cost a fetch of its own per yield, 8 to 10 % of
 *   the redis mode's throughput.)
 * - repair sweep (`repair-sweep.ts`: at `consume` start, then every few seconds in each worker):
 *   adds to BullMQ what the registry's sweeps return; sweeps of several workers may overlap.
 * - concurrency: one process runs several BullMQ workers of at most `WORKER_SLICE` jobs each.
 *   A BullMQ worker fetches jobs one round trip at a time and, while jobs are waiting, starts
 *   none before it has fetched as many as its concurrency: with one worker at a concurrency of
 *   2,000 the first job of a burst started seconds late, and fetched jobs sat locked unstarted.
 *
 * FAILURE CASES (those of the registry, and the dying API process, are in `group-registry.ts`)
 *
 * - A worker dies while running a job: BullMQ's lock expires, the stalled checker of another
 *   worker moves it back to wait (`maxStalledCount` is huge, so stalling never fails a job), and
 *   it runs again with `attempt + 1`. How long that takes, with L the lock duration and S the
 *   stalled interval: a live worker rewrites its jobs' locks every L/8 to L/4 (BullMQ's timer
 *   ticks every half of `lockRenewTime`, L/4 here); a check (one script, at most one per S
 *   across all workers: a key set for S stops the others) moves to wait the jobs that the
 *   previous check marked and whose lock is gone, then marks every active job; a renewal unmarks
 *   it. So a job is moved by the first check at or after its lock's expiry (the kill plus L at
 *   most) that follows a check made after its last renewal. Checks come every S, or after up to
 *   2S when the dead worker made the last one; the worst case is max(L + S, 3S). With S = L/2
 *   (the default) that is 1.5 L, 7.5 s for the default L of 5 s, plus the Redis round trips and
 *   timer delays. The price is a lock that lapses when a live worker's event loop stalls for
 *   longer than L - L/4 (3.75 s by default): its job then runs a second time (same task, same
 *   `webhook-id`; the store keeps the first generation, the conversation's order holds).
 * - A worker dies while a run it holds outside BullMQ goes on: the hold is no longer renewed, and
 *   the first pending sweep after it is older than the registry's grace period adds the job back
 *   (the lock duration plus 3 s plus the repair interval at most); it runs again with attempt + 1.
 * - `close()` times out: running jobs are moved back to wait at once (another worker takes
 *   them), held runs have their holds released at once (the next sweep of another worker adds
 *   them back); their handlers' late results are discarded. If even that fails, the lock (or the
 *   hold) expires.
 * - Redis itself loses data (no persistence): out of scope; run Redis with AOF for durability.
 */
import { randomUUID } from 'node:crypto';
import { type Job as BullJob, DelayedError, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createRedisClient, pingRedis, withRedis } from '../../backends/redis/redis-connection.js';
import { PermanentJobError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import {
  type CloseOptions,
  type ConsumeOptions,
  defaultBackoffMs,
  type Job,
  type JobCounts,
  type JobHandler,
  type JobQueue,
  type NewJob,
} from '../job-queue.js';
import { createGroupRegistry, type JobData, type RegisteredJob } from './group-registry.js';
import { type RepairSweep, startRepairSweep } from './repair-sweep.js';

export interface BullmqJobQueueOptions {
  url: string;
  /** BullMQ key prefix; keep a `{hash tag}` for Redis Cluster. */
  prefix: string;
  /** Default `jobs`. */
  queueName?: string;
  logger?: Logger;
  /** How long a job's lock lasts without renewal (renewed every quarter of it); default 5 000. */
  lockDurationMs?: number;
  /** How often workers look for jobs whose lock expired; default half of `lockDurationMs`. */
  stalledIntervalMs?: number;
  /** How often a worker runs the repair sweep; default 5 000. */
  repairIntervalMs?: number;
}

/** The lock of a running job; a dead worker's jobs are taken over within 1.5 times it. */
const DEFAULT_LOCK_DURATION_MS = 5000;
/** Most jobs one BullMQ worker runs at once; a process runs as many workers as it needs. */
const WORKER_SLICE = 200;
/** BullMQ's event stream is not read by this service; keep it short. */
const EVENTS_MAX_LEN = 100;
/** Stalling must never fail a job: it is always handed to another worker. */
const MAX_STALLED_COUNT = 1_000_000;
/** BullMQ's own retries, used only when our `moveToDelayed` itself failed. */
const BULL_ATTEMPTS = 1_000_000;

/** Creates the BullMQ-backed queue; connects at once, starts workers only in `consume`. */
export function createBullmqJobQueue(options: BullmqJobQueueOptions): JobQueue {
  const queueName = options.queueName ?? 'jobs';
  const lockDurationMs = options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
  // Both well inside the lock: see FAILURE CASES for the takeover time they give.
  const lockRenewMs = Math.max(1, Math.floor(lockDurationMs / 4));
  const stalledIntervalMs = options.stalledIntervalMs ?? Math.max(1, Math.floor(lockDurationMs / 2));
  const repairIntervalMs = options.repairIntervalMs ?? 5_000;
  const logger = options.logger;

  const client: Redis = createRedisClient(options.url, { role: 'command', logger });
  const registry = createGroupRegistry(client, `${options.prefix}:${queueName}`);

  const queue = new Queue<JobData, void, string>(queueName, {
    connection: client,
    prefix: options.prefix,
    streams: { events: { maxLen: EVENTS_MAX_LEN } },
  });
  queue.on('error', (error) => logger?.warn({ err: error }, 'queue connection error'));

  let workers: Worker<JobData, void, string>[] | null = null;
  let workerClient: Redis | null = null;
  let repairSweep: RepairSweep | null = null;
  let closing: Promise<void> | null = null;
  /** Runs of this process, by BullMQ id; those abandoned by `close` must not finish their job. */
  const running = new Map<
    string,
    { job: BullJob<JobData, void, string>; token: string; abandoned: boolean }
  >();

  /** Adds a registered job to BullMQ (a no-op when its BullMQ id is there already). */
  const addToBull = async (job: RegisteredJob): Promise<void> => {
    const delay = Math.max(0, job.runAtMs - Date.now());
    await queue.add(
      job.name,
      {
        id: job.id,
        name: job.name,
        taskId: job.taskId,
        group: job.group,
        priority: job.priority ?? 'normal',
        ...(job.trace === undefined ? {} : { trace: job.trace }),
      },
      {
        jobId: job.bullId,
        ...(delay > 0 ? { delay } : {}),
        // BullMQ takes unprioritised jobs first: a `first` job (a delivery, whose reply is ready)
        // runs before `normal` ones, so a backlog of messages does not hold finished replies back.
        ...(job.priority === 'first' ? {} : { priority: 1 }),
        attempts: BULL_ATTEMPTS,
        backoff: { type: 'llmw' },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  };

  /** Ends a job: off the registry and its group, then the group's next job into BullMQ. */
  const finish = async (data: JobData, bullId: string): Promise<void> => {
    const next = await registry.finish(data, bullId, Date.now());
    if (next !== null) await addToBull(next);
  };

  /**
   * Runs of this process acknowledged to BullMQ before their handler ended (`yieldSlot`), by our
   * id: held in `lw:pending` for a lock duration ahead, renewed as often as BullMQ renews locks.
   */
  const held = new Map<string, { abandoned: boolean; ended: Promise<void> }>();
  let holdRenewal: NodeJS.Timeout | null = null;
  const renewHolds = (): void => {
    if (held.size === 0) {
      if (holdRenewal !== null) clearInterval(holdRenewal);
      holdRenewal = null;
      return;
    }
    registry
      .hold([...held.keys()], Date.now() + lockDurationMs, true)
      .catch((error: unknown) => logger?.warn({ err: error }, 'could not renew held runs'));
  };

  /** What a handler's run came to: `null` when the job is done, else the delay before its retry. */
  const runHandler = async (
    handler: JobHandler,
    job: Job,
    data: JobData,
    attempt: number,
  ): Promise<number | null> => {
    try {
      const result = await handler(job);
      return result.type === 'retry' ? Math.max(0, result.delayMs) : null;
    } catch (error) {
      if (error instanceof PermanentJobError) {
        logger?.warn({ task_id: data.taskId, job_id: data.id, err: error }, 'job ended by a permanent error');
        return null;
      }
      const delayMs = defaultBackoffMs(attempt);
      logger?.warn({ task_id: data.taskId, job_id: data.id, err: error, delay_ms: delayMs }, 'job threw');
      return delayMs;
    }
  };

  /**
   * A run that yields its slot goes on outside BullMQ: it is held in the registry's `lw:pending`
   * (so no sweep adds it back while it runs, and one does once its process has died), and the
   * processor returns, so BullMQ acknowledges the job and fetches the next one in the same round
   * trip. When the handler ends, the registry's finish script ends the job as usual; for a retry
   * asked for after the yield, its hold is released at the retry's time, and the pending sweep
   * adds the job back then (within its interval).
   */
  const continueHeld = (data: JobData, bullId: string, run: Promise<number | null>): void => {
    const entry = { abandoned: false, ended: Promise.resolve() };
    entry.ended = run
      .then(async (delayMs) => {
        if (entry.abandoned) return;
        if (delayMs === null) await finish(data, bullId);
        else await registry.release([data.id], Date.now() + delayMs);
      })
      .catch((error: unknown) =>
        logger?.warn(
          { err: error, job_id: data.id },
          'a held run could not end; the repair sweep will run it again',
        ),
      )
      .finally(() => {
        if (held.get(data.id) === entry) held.delete(data.id);
      });
    held.set(data.id, entry);
    if (holdRenewal === null) {
      holdRenewal = setInterval(renewHolds, lockRenewMs);
      holdRenewal.unref();
    }
  };

  /** The processor of one BullMQ worker. */
  const processor =
    (handler: JobHandler) =>
    async (bullJob: BullJob<JobData, void, string>, token?: string): Promise<void> => {
      const bullId = bullJob.id!;
      const data = bullJob.data;
      const attempt = await registry.start(data.id, bullId);
      // A stale copy (re-added by a repair after the job ended): acknowledge without running.
      if (attempt === 0) return;

      const slot = { job: bullJob, token: token ?? '', abandoned: false };
      running.set(bullId, slot);
      try {
        let yielded = (): void => {};
        const yieldedSlot = new Promise<'yielded'>((resolve) => {
          yielded = () => resolve('yielded');
        });
        const job: Job = {
          id: data.id,
          name: data.name,
          taskId: data.taskId,
          group: data.group,
          attempt,
          trace: data.trace ?? null,
          yieldSlot: () => {
            if (!slot.abandoned && closing === null) yielded();
          },
        };
        const run = runHandler(handler, job, data, attempt);
        if ((await Promise.race([run, yieldedSlot])) === 'yielded') {
          const holding = await registry
            .hold([data.id], Date.now() + lockDurationMs, false)
            .then(() => true)
            .catch((error: unknown) => {
              logger?.warn({ err: error, job_id: data.id }, 'could not hold a run; it keeps its slot');
              return false;
            });
          if (holding && !slot.abandoned) {
            continueHeld(data, bullId, run);
            return;
          }
        }
        const delayMs = await run;
        // Handed back by `close`: another worker owns the job now.
        if (slot.abandoned) throw new Error('job handed back to the queue at shutdown');
        if (delayMs === null) {
          await finish(data, bullId);
          return;
        }
        await bullJob.moveToDelayed(Date.now() + delayMs, token);
        throw new DelayedError();
      } finally {
        running.delete(bullId);
      }
    };

  /**
   * `done` once `work` has resolved, or `timeout` at `deadlineMs` if that comes first; a rejection
   * of `work` before then is passed on.
   */
  const settledBy = async (work: Promise<unknown>, deadlineMs: number): Promise<'done' | 'timeout'> => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadlineMs - Date.now()), 'timeout');
    });
    const done = work.then(() => 'done' as const);
    // A rejection after the deadline is nobody's to handle.
    done.catch(() => {});
    try {
      return await Promise.race([done, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };

  const closeWorkers = async (timeoutMs: number): Promise<void> => {
    if (workers === null) return;
    const deadlineMs = Date.now() + timeoutMs;
    const current = workers;
    // `pause` stops taking jobs and resolves once the running ones have finished. (`close()`
    // cannot be used for this: once called, a later forced `close(true)` waits for it.)
    const outcome = await settledBy(Promise.all(current.map((worker) => worker.pause())), deadlineMs);
    if (outcome === 'timeout') {
      // Hand running jobs back now rather than after their lock expires; the late results of
      // their handlers are discarded (see `processor`).
      await Promise.all(
        [...running.values()].map(async (slot) => {
          slot.abandoned = true;
          try {
            await slot.job.moveToWait(slot.token);
          } catch (error) {
            logger?.warn(
              { err: error, job_id: slot.job.data.id },
              'could not hand a job back; its lock will expire',
            );
          }
        }),
      );
    }
    await Promise.all(current.map((worker) => worker.close(outcome === 'timeout').catch(() => {})));
    // The runs held outside BullMQ, within what is left of the time; those still running then are
    // released at once, so a sweep of another worker runs them again.
    const heldNow = [...held.entries()];
    const left = await settledBy(Promise.all(heldNow.map(([, entry]) => entry.ended)), deadlineMs);
    if (holdRenewal !== null) clearInterval(holdRenewal);
    holdRenewal = null;
    if (left === 'timeout') {
      const abandoned = heldNow.filter(([id]) => held.has(id));
      for (const [, entry] of abandoned) entry.abandoned = true;
      await registry
        .release(
          abandoned.map(([id]) => id),
          Date.now(),
        )
        .catch((error: unknown) =>
          logger?.warn({ err: error }, 'could not hand held runs back; their holds will lapse'),
        );
    }
  };

  return {
    async enqueue(newJob: NewJob) {
      if (closing !== null) throw new Error('the queue is closed');
      const now = Date.now();
      const job: RegisteredJob = {
        id: newJob.id,
        name: newJob.name,
        taskId: newJob.taskId,
        group: newJob.group ?? null,
        priority: newJob.priority ?? 'normal',
        ...(newJob.trace === undefined ? {} : { trace: newJob.trace }),
        bullId: `j${randomUUID()}`,
        runAtMs: now + Math.max(0, newJob.delayMs ?? 0),
      };
      return withRedis('enqueue', async () => {
        const placed = await registry.enqueue(job, now);
        if (placed === 'duplicate') return false;
        if (placed === 'add') await addToBull(job);
        return true;
      });
    },

    consume(handler: JobHandler, consumeOptions: ConsumeOptions) {
      if (workers !== null) throw new Error('consume() was called already');
      if (closing !== null) throw new Error('the queue is closed');
      const blockingClient = createRedisClient(options.url, { role: 'blocking', logger });
      workerClient = blockingClient;
      const concurrency = Math.max(1, Math.floor(consumeOptions.concurrency));
      const count = Math.ceil(concurrency / WORKER_SLICE);
      // The workers share one command connection; each blocks on a connection of its own.
      workers = Array.from({ length: count }, (_, index) => {
        const worker = new Worker<JobData, void, string>(queueName, processor(handler), {
          connection: blockingClient,
          prefix: options.prefix,
          concurrency: Math.floor(concurrency / count) + (index < concurrency % count ? 1 : 0),
          lockDuration: lockDurationMs,
          lockRenewTime: lockRenewMs,
          stalledInterval: stalledIntervalMs,
          maxStalledCount: MAX_STALLED_COUNT,
          settings: { backoffStrategy: (attemptsMade: number) => defaultBackoffMs(attemptsMade) },
        });
        worker.on('error', (error) => logger?.warn({ err: error }, 'worker error'));
        worker.on('failed', (bullJob, error) =>
          logger?.warn(
            { err: error, job_id: bullJob?.data.id },
            'job run failed in BullMQ; it will be retried',
          ),
        );
        return worker;
      });
      repairSweep = startRepairSweep({ registry, addToBull, intervalMs: repairIntervalMs, logger });
    },

    groupPending: (group) => withRedis('look at a group', () => registry.groupPending(group)),

    counts: () =>
      withRedis('count jobs', async (): Promise<JobCounts> => {
        const [bull, { total, held: heldNow }] = await Promise.all([
          queue.getJobCounts('active', 'delayed'),
          registry.countUnfinished(Date.now()),
        ]);
        // Runs held outside BullMQ (of any process) are running too.
        const active = (bull.active ?? 0) + heldNow;
        const delayed = bull.delayed ?? 0;
        return { waiting: Math.max(0, total - active - delayed), active, delayed };
      }),

    ping: () => pingRedis(client),

    close(closeOptions?: CloseOptions) {
      closing ??= (async () => {
        repairSweep?.stop();
        await closeWorkers(closeOptions?.timeoutMs ?? 10_000);
        await queue.close().catch(() => {});
        workerClient?.disconnect();
        client.disconnect();
      })();
      return closing;
    },
  };
}
