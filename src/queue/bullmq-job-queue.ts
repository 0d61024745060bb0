/**
 * The redis mode's `JobQueue` on BullMQ, and the only importer of `bullmq`. Loaded lazily by the
 * composition root, so the embedded mode never loads it.
 *
 * DESIGN
 *
 * BullMQ runs the jobs (locks, lock renewal, stalled-job recovery, delays, concurrency). Around
 * it, a small registry in Redis gives the seam what open-source BullMQ lacks: deduplication that
 * lasts exactly as long as the job, and ordered groups across any number of processes.
 * Keys (beside BullMQ's, under the same `<prefix>:<queue>` base, so one hash tag covers all):
 *
 * - `lw:jobs`      hash  our id -> `<bullId>|<json>`: every unfinished job. Its presence is the
 *                        dedup check, its size the number of unfinished jobs.
 * - `lw:attempts`  hash  our id -> runs started (the `attempt` handed to the handler).
 * - `lw:group:<g>` list  ids of group `g` in enqueue order; the head is the one job of the group
 *                        that is in BullMQ, the rest wait here.
 * - `lw:groups`    set   groups with a non-empty list (for the repair sweep).
 * - `lw:pending`   zset  ids that must be added to BullMQ but may not be yet, scored by when.
 *
 * Each job gets a fresh BullMQ id (`j<uuid>`; our ids may hold `:`, which BullMQ refuses).
 *
 * - enqueue: ONE script checks the registry (duplicate -> `false`), stores the job, RPUSHes it
 *   on its group list, and, when the list was empty (the job is the head) or there is no group,
 *   records it in `lw:pending`. Then the job is added to BullMQ and leaves `lw:pending`.
 * - run: ONE script checks that the job is still registered under this BullMQ id (a stale copy
 *   re-added by a repair is skipped) and increments its attempt counter.
 * - done / PermanentJobError: BEFORE the job is acknowledged to BullMQ, ONE script removes it
 *   from the registry, pops it off its group list and records the next id of the group in
 *   `lw:pending`; the next job is then added to BullMQ. Only then does the processor return.
 * - retry (or any other throw): `moveToDelayed` + `DelayedError`; the job stays the group head,
 *   so the group stays blocked until it ends. Its attempt counter lives in `lw:attempts`.
 * - repair sweep (at `consume` start, then every few seconds in each worker): adds to BullMQ
 *   every `lw:pending` id older than a grace period, and every group head whose BullMQ job is
 *   missing. Adding is idempotent (same BullMQ id), so sweeps of several workers may overlap.
 *
 * FAILURE CASES
 *
 * - An API process dies between the enqueue script and the BullMQ add: the id is in
 *   `lw:pending` (and heads its group); the next sweep adds it. Nothing is lost, the group waits.
 * - A worker dies while running a job: BullMQ's lock expires, the stalled checker of another
 *   worker moves it back to wait (`maxStalledCount` is huge, so stalling never fails a job), and
 *   it runs again with `attempt + 1`.
 * - A worker dies after the finish script but before the next job's add: the next id is in
 *   `lw:pending`; a sweep adds it. Before the BullMQ acknowledgement: the job runs again as a
 *   stale copy, whose run script finds it unregistered, so it is acknowledged without running.
 * - A sweep re-adds a job that finished meanwhile: same as above, a stale copy, skipped.
 * - BullMQ fails or drops a head for any other reason: the group sweep re-adds it.
 * - `close()` times out: running jobs are moved back to wait at once (another worker takes
 *   them); their handlers' late results are discarded. If even that fails, the lock expires.
 * - Redis itself loses data (no persistence): out of scope; run Redis with AOF for durability.
 */
import { randomUUID } from 'node:crypto';
import { type Job as BullJob, type ConnectionOptions, DelayedError, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { PermanentJobError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { createRedisClient, withRedis } from '../shared/redis-connection.js';
import {
  type CloseOptions,
  type ConsumeOptions,
  defaultBackoffMs,
  type Job,
  type JobCounts,
  type JobHandler,
  type JobName,
  type JobQueue,
  type NewJob,
} from './job-queue.js';

export interface BullmqJobQueueOptions {
  url: string;
  /** BullMQ key prefix; keep a `{hash tag}` for Redis Cluster. */
  prefix: string;
  /** Default `jobs`. */
  queueName?: string;
  logger?: Logger;
  /** How long a job's lock lasts without renewal (renewed every half of it); default 60 000. */
  lockDurationMs?: number;
  /** How often workers look for jobs whose lock expired; default 30 000. */
  stalledIntervalMs?: number;
  /** How often a worker runs the repair sweep; default 5 000. */
  repairIntervalMs?: number;
}

interface JobData {
  id: string;
  name: JobName;
  taskId: string;
  group: string | null;
}

interface RegisteredJob extends JobData {
  bullId: string;
  /** Epoch ms before which the job must not run. */
  runAtMs: number;
}

const PING_TIMEOUT_MS = 2000;
/** A `lw:pending` entry younger than this is left to the process that is adding it. */
const PENDING_GRACE_MS = 3000;
/** Entries of `lw:pending` and groups handled per repair sweep step. */
const REPAIR_BATCH = 500;
/** Stalling must never fail a job: it is always handed to another worker. */
const MAX_STALLED_COUNT = 1_000_000;
/** BullMQ's own retries, used only when our `moveToDelayed` itself failed. */
const BULL_ATTEMPTS = 1_000_000;

const SCRIPTS = {
  // KEYS: jobs, pending, groups, group list. ARGV: id, entry, group ('' = none), now.
  // Returns nil for a duplicate, 1 when the job waits behind its group head, 2 when it must be
  // added to BullMQ now.
  llmwQueueEnqueue: {
    keys: 4,
    lua: `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return nil end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[3])
  if redis.call('RPUSH', KEYS[4], ARGV[1]) > 1 then return 1 end
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 2`,
  },
  // KEYS: jobs, attempts. ARGV: id, bullId. Returns the attempt number, or 0 for a stale copy.
  llmwQueueStart: {
    keys: 2,
    lua: `
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.sub(entry, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return 0 end
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)`,
  },
  // KEYS: jobs, attempts, pending, groups, group list. ARGV: id, bullId, group, now.
  // Returns the next group head's entry when this job was the head, else nil.
  llmwQueueFinish: {
    keys: 5,
    lua: `
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.sub(entry, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[3] == '' then return nil end
if redis.call('LINDEX', KEYS[5], 0) ~= ARGV[1] then
  redis.call('LREM', KEYS[5], 1, ARGV[1])
  return nil
end
redis.call('LPOP', KEYS[5])
while true do
  local nextId = redis.call('LINDEX', KEYS[5], 0)
  if not nextId then
    redis.call('SREM', KEYS[4], ARGV[3])
    return nil
  end
  local nextEntry = redis.call('HGET', KEYS[1], nextId)
  if nextEntry then
    redis.call('ZADD', KEYS[3], ARGV[4], nextId)
    return nextEntry
  end
  redis.call('LPOP', KEYS[5])
end`,
  },
  // KEYS: pending. ARGV: id, score. Removes the entry only if nobody re-recorded it meanwhile.
  llmwQueueSettle: {
    keys: 1,
    lua: `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`,
  },
  // KEYS: jobs, groups, group list. ARGV: group. The head's entry; drops unregistered heads and
  // forgets an empty group.
  llmwQueueGroupHead: {
    keys: 3,
    lua: `
while true do
  local head = redis.call('LINDEX', KEYS[3], 0)
  if not head then
    redis.call('SREM', KEYS[2], ARGV[1])
    return nil
  end
  local entry = redis.call('HGET', KEYS[1], head)
  if entry then return entry end
  redis.call('LPOP', KEYS[3])
end`,
  },
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptArg = string | number;
type ScriptFn = (...args: ScriptArg[]) => Promise<unknown>;

function encodeEntry(job: RegisteredJob): string {
  return `${job.bullId}|${JSON.stringify(job)}`;
}

function decodeEntry(entry: string): RegisteredJob {
  return JSON.parse(entry.slice(entry.indexOf('|') + 1)) as RegisteredJob;
}

/** Creates the BullMQ-backed queue; connects at once, starts workers only in `consume`. */
export function createBullmqJobQueue(options: BullmqJobQueueOptions): JobQueue {
  const queueName = options.queueName ?? 'jobs';
  const base = `${options.prefix}:${queueName}`;
  const keys = {
    jobs: `${base}:lw:jobs`,
    attempts: `${base}:lw:attempts`,
    pending: `${base}:lw:pending`,
    groups: `${base}:lw:groups`,
    group: (group: string | null) => `${base}:lw:group:${group ?? ''}`,
  };
  const lockDurationMs = options.lockDurationMs ?? 60_000;
  const stalledIntervalMs = options.stalledIntervalMs ?? 30_000;
  const repairIntervalMs = options.repairIntervalMs ?? 5_000;
  const logger = options.logger;

  const client: Redis = createRedisClient(options.url, { role: 'command', logger });
  for (const [name, script] of Object.entries(SCRIPTS)) {
    client.defineCommand(name, { numberOfKeys: script.keys, lua: script.lua });
  }
  const commands = client as unknown as Record<ScriptName, ScriptFn>;
  const run = (name: ScriptName, scriptKeys: string[], args: ScriptArg[]): Promise<unknown> =>
    commands[name].call(client, ...scriptKeys, ...args);

  // bullmq ships its own ioredis copy; its type differs from ours, the object is what it expects.
  const connection = (redis: Redis): ConnectionOptions => redis as unknown as ConnectionOptions;
  const queue = new Queue<JobData, void, string>(queueName, {
    connection: connection(client),
    prefix: options.prefix,
  });
  queue.on('error', (error) => logger?.warn({ err: error }, 'queue connection error'));

  let worker: Worker<JobData, void, JobName> | null = null;
  let workerClient: Redis | null = null;
  let repairTimer: NodeJS.Timeout | null = null;
  let closing: Promise<void> | null = null;
  /** Runs of this process, by BullMQ id; those abandoned by `close` must not finish their job. */
  const running = new Map<
    string,
    { job: BullJob<JobData, void, JobName>; token: string; abandoned: boolean }
  >();

  /** Adds a registered job to BullMQ (a no-op when its BullMQ id is there already). */
  const addToBull = async (job: RegisteredJob): Promise<void> => {
    const delay = Math.max(0, job.runAtMs - Date.now());
    await queue.add(
      job.name,
      { id: job.id, name: job.name, taskId: job.taskId, group: job.group },
      {
        jobId: job.bullId,
        ...(delay > 0 ? { delay } : {}),
        attempts: BULL_ATTEMPTS,
        backoff: { type: 'llmw' },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  };

  /** Adds a job recorded in `lw:pending` at `since`, then clears the record. */
  const addPending = async (job: RegisteredJob, since: number): Promise<void> => {
    await addToBull(job);
    await run('llmwQueueSettle', [keys.pending], [job.id, since]);
  };

  const repair = async (): Promise<void> => {
    const before = Date.now() - PENDING_GRACE_MS;
    const pending = await client.zrangebyscore(
      keys.pending,
      '-inf',
      before,
      'WITHSCORES',
      'LIMIT',
      0,
      REPAIR_BATCH,
    );
    for (let index = 0; index + 1 < pending.length; index += 2) {
      const id = pending[index]!;
      const since = Number(pending[index + 1]);
      const entry = await client.hget(keys.jobs, id);
      if (entry === null) {
        await run('llmwQueueSettle', [keys.pending], [id, since]);
        continue;
      }
      logger?.info({ job_id: id }, 'repair: adding a job that was never handed to BullMQ');
      await addPending(decodeEntry(entry), since);
    }

    let cursor = '0';
    do {
      const [next, groups] = await client.sscan(keys.groups, cursor, 'COUNT', REPAIR_BATCH);
      cursor = next;
      for (const group of groups) {
        const entry = (await run(
          'llmwQueueGroupHead',
          [keys.jobs, keys.groups, keys.group(group)],
          [group],
        )) as string | null;
        if (entry === null) continue;
        const head = decodeEntry(entry);
        if ((await client.exists(`${base}:${head.bullId}`)) === 1) continue;
        if ((await client.zscore(keys.pending, head.id)) !== null) continue;
        logger?.info({ job_id: head.id, group }, 'repair: adding a group head missing from BullMQ');
        await addToBull(head);
      }
    } while (cursor !== '0');
  };

  const runRepair = (): void => {
    repair().catch((error: unknown) => logger?.warn({ err: error }, 'queue repair sweep failed'));
  };

  /** Ends a job: off the registry and its group, then the group's next job into BullMQ. */
  const finish = async (data: JobData, bullId: string): Promise<void> => {
    const now = Date.now();
    const nextEntry = (await run(
      'llmwQueueFinish',
      [keys.jobs, keys.attempts, keys.pending, keys.groups, keys.group(data.group)],
      [data.id, bullId, data.group ?? '', now],
    )) as string | null;
    if (nextEntry !== null) await addPending(decodeEntry(nextEntry), now);
  };

  const processor =
    (handler: JobHandler) =>
    async (bullJob: BullJob<JobData, void, JobName>, token?: string): Promise<void> => {
      const bullId = bullJob.id!;
      const data = bullJob.data;
      const attempt = Number(await run('llmwQueueStart', [keys.jobs, keys.attempts], [data.id, bullId]));
      // A stale copy (re-added by a repair after the job ended): acknowledge without running.
      if (attempt === 0) return;

      const slot = { job: bullJob, token: token ?? '', abandoned: false };
      running.set(bullId, slot);
      try {
        const job: Job = { id: data.id, name: data.name, taskId: data.taskId, group: data.group, attempt };
        let delayMs: number | null = null;
        try {
          const result = await handler(job);
          if (result.type === 'retry') delayMs = Math.max(0, result.delayMs);
        } catch (error) {
          if (error instanceof PermanentJobError) {
            logger?.warn(
              { task_id: data.taskId, job_id: data.id, err: error },
              'job ended by a permanent error',
            );
          } else {
            delayMs = defaultBackoffMs(attempt);
            logger?.warn(
              { task_id: data.taskId, job_id: data.id, err: error, delay_ms: delayMs },
              'job threw',
            );
          }
        }
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

  const closeWorker = async (timeoutMs: number): Promise<void> => {
    if (worker === null) return;
    const current = worker;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, timeoutMs), 'timeout');
    });
    // `pause` stops taking jobs and resolves once the running ones have finished. (`close()`
    // cannot be used for this: once called, a later forced `close(true)` waits for it.)
    const drained = current.pause().then(() => 'drained' as const);
    drained.catch(() => {});
    const outcome = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
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
    await current.close(outcome === 'timeout').catch(() => {});
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
        bullId: `j${randomUUID()}`,
        runAtMs: now + Math.max(0, newJob.delayMs ?? 0),
      };
      return withRedis('enqueue', async () => {
        const placed = await run(
          'llmwQueueEnqueue',
          [keys.jobs, keys.pending, keys.groups, keys.group(job.group)],
          [job.id, encodeEntry(job), job.group ?? '', now],
        );
        if (placed === null) return false;
        if (placed === 2) await addPending(job, now);
        return true;
      });
    },

    consume(handler: JobHandler, consumeOptions: ConsumeOptions) {
      if (worker !== null) throw new Error('consume() was called already');
      if (closing !== null) throw new Error('the queue is closed');
      workerClient = createRedisClient(options.url, { role: 'blocking', logger });
      worker = new Worker<JobData, void, JobName>(queueName, processor(handler), {
        connection: connection(workerClient),
        prefix: options.prefix,
        concurrency: Math.max(1, consumeOptions.concurrency),
        lockDuration: lockDurationMs,
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
      runRepair();
      repairTimer = setInterval(runRepair, repairIntervalMs);
      repairTimer.unref();
    },

    counts: () =>
      withRedis('count jobs', async (): Promise<JobCounts> => {
        const [bull, total] = await Promise.all([
          queue.getJobCounts('active', 'delayed'),
          client.hlen(keys.jobs),
        ]);
        const active = bull.active ?? 0;
        const delayed = bull.delayed ?? 0;
        return { waiting: Math.max(0, total - active - delayed), active, delayed };
      }),

    ping: () =>
      withRedis(
        'ping',
        async () => {
          await client.ping();
        },
        PING_TIMEOUT_MS,
      ),

    close(closeOptions?: CloseOptions) {
      closing ??= (async () => {
        if (repairTimer !== null) clearInterval(repairTimer);
        await closeWorker(closeOptions?.timeoutMs ?? 10_000);
        await queue.close().catch(() => {});
        workerClient?.disconnect();
        client.disconnect();
      })();
      return closing;
    },
  };
}
