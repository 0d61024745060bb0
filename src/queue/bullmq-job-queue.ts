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
 *   records it in `lw:pending`. Then the job is added to BullMQ. It leaves `lw:pending` when it
 *   starts or ends, or when a sweep finds it in BullMQ (no extra round trip per job).
 * - run: ONE script checks that the job is still registered under this BullMQ id (a stale copy
 *   re-added by a repair is skipped), increments its attempt counter and clears `lw:pending`.
 * - done / PermanentJobError: BEFORE the job is acknowledged to BullMQ, ONE script removes it
 *   from the registry, pops it off its group list and records the next id of the group in
 *   `lw:pending`; the next job is then added to BullMQ. Only then does the processor return.
 * - retry (or any other throw): `moveToDelayed` + `DelayedError`; the job stays the group head,
 *   so the group stays blocked until it ends. Its attempt counter lives in `lw:attempts`.
 * - repair sweep (at `consume` start, then every few seconds in each worker, never two at once
 *   in one process): adds to BullMQ every `lw:pending` id older than a grace period whose BullMQ
 *   job is missing, and every group head whose BullMQ job is missing. Each batch of ids or
 *   groups is checked by ONE script, so a sweep over thousands of groups costs a few round
 *   trips. Adding is idempotent (same BullMQ id), so sweeps of several workers may overlap.
 * - concurrency: one process runs several BullMQ workers of at most `WORKER_SLICE` jobs each.
 *   A BullMQ worker fetches jobs one round trip at a time and, while jobs are waiting, starts
 *   none before it has fetched as many as its concurrency: with one worker at a concurrency of
 *   2,000 the first job of a burst started seconds late, and fetched jobs sat locked unstarted.
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
import { type Job as BullJob, DelayedError, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { PermanentJobError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { createRedisClient, withRedis } from '../shared/redis-connection.js';
import {
  type CloseOptions,
  type ConsumeOptions,
  defaultBackoffMs,
  JOB_NAMES,
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
/** Most jobs one BullMQ worker runs at once; a process runs as many workers as it needs. */
const WORKER_SLICE = 200;
/** BullMQ's event stream is not read by this service; keep it short. */
const EVENTS_MAX_LEN = 100;
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
  // KEYS: jobs, attempts, pending. ARGV: id, bullId. Returns the attempt number, or 0 for a
  // stale copy. A running job is in BullMQ: it needs no `lw:pending` record any more.
  llmwQueueStart: {
    keys: 3,
    lua: `
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.sub(entry, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
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
  // KEYS: jobs, pending. ARGV: BullMQ key base (`<prefix>:<queue>:`), oldest score to keep.
  // Settles the `lw:pending` entries older than the grace period whose job ended or is in
  // BullMQ, and returns the entries of the others (to be added). BullMQ job keys are derived
  // from the base; they share its hash tag.
  llmwQueueSweepPending: {
    keys: 2,
    lua: `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ${REPAIR_BATCH})
local missing = {}
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if not entry then
    redis.call('ZREM', KEYS[2], id)
  else
    local bullId = string.match(entry, '^([^|]*)|')
    if redis.call('EXISTS', ARGV[1] .. bullId) == 1 then
      redis.call('ZREM', KEYS[2], id)
    else
      missing[#missing + 1] = entry
    end
  end
end
return missing`,
  },
  // KEYS: jobs, groups, pending. ARGV: BullMQ key base, then group list key prefix, then group
  // names. Drops unregistered heads, forgets empty groups, and returns the entries of the heads
  // that are neither in BullMQ nor recorded in `lw:pending`.
  llmwQueueSweepGroups: {
    keys: 3,
    lua: `
local missing = {}
for index = 3, #ARGV do
  local group = ARGV[index]
  local list = ARGV[2] .. group
  while true do
    local head = redis.call('LINDEX', list, 0)
    if not head then
      redis.call('SREM', KEYS[2], group)
      break
    end
    local entry = redis.call('HGET', KEYS[1], head)
    if entry then
      local bullId = string.match(entry, '^([^|]*)|')
      if redis.call('EXISTS', ARGV[1] .. bullId) == 0 and not redis.call('ZSCORE', KEYS[3], head) then
        missing[#missing + 1] = entry
      end
      break
    end
    redis.call('LPOP', list)
  end
end
return missing`,
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

  const queue = new Queue<JobData, void, string>(queueName, {
    connection: client,
    prefix: options.prefix,
    streams: { events: { maxLen: EVENTS_MAX_LEN } },
  });
  queue.on('error', (error) => logger?.warn({ err: error }, 'queue connection error'));

  let workers: Worker<JobData, void, JobName>[] | null = null;
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
        // BullMQ takes unprioritised jobs first: a delivery (its reply is ready) goes out before
        // new generations start, so a backlog of messages does not hold finished replies back.
        ...(job.name === JOB_NAMES.deliver ? {} : { priority: 1 }),
        attempts: BULL_ATTEMPTS,
        backoff: { type: 'llmw' },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  };

  const bullKeyBase = `${base}:`;

  const repair = async (): Promise<void> => {
    for (;;) {
      const missing = (await run(
        'llmwQueueSweepPending',
        [keys.jobs, keys.pending],
        [bullKeyBase, Date.now() - PENDING_GRACE_MS],
      )) as string[];
      for (const entry of missing) {
        const job = decodeEntry(entry);
        logger?.info({ job_id: job.id }, 'repair: adding a job that was never handed to BullMQ');
        await addToBull(job);
      }
      // A full batch may hide more; the added ones are in BullMQ now and settle next time.
      if (missing.length < REPAIR_BATCH) break;
    }

    let cursor = '0';
    do {
      const [next, groups] = await client.sscan(keys.groups, cursor, 'COUNT', REPAIR_BATCH);
      cursor = next;
      if (groups.length === 0) continue;
      const missing = (await run(
        'llmwQueueSweepGroups',
        [keys.jobs, keys.groups, keys.pending],
        [bullKeyBase, keys.group(''), ...groups],
      )) as string[];
      for (const entry of missing) {
        const head = decodeEntry(entry);
        logger?.info(
          { job_id: head.id, group: head.group },
          'repair: adding a group head missing from BullMQ',
        );
        await addToBull(head);
      }
    } while (cursor !== '0');
  };

  let repairing: Promise<void> | null = null;
  const runRepair = (): void => {
    // One sweep at a time: under load a sweep can outlast the interval.
    if (repairing !== null) return;
    repairing = repair()
      .catch((error: unknown) => logger?.warn({ err: error }, 'queue repair sweep failed'))
      .finally(() => {
        repairing = null;
      });
  };

  /** Ends a job: off the registry and its group, then the group's next job into BullMQ. */
  const finish = async (data: JobData, bullId: string): Promise<void> => {
    const now = Date.now();
    const nextEntry = (await run(
      'llmwQueueFinish',
      [keys.jobs, keys.attempts, keys.pending, keys.groups, keys.group(data.group)],
      [data.id, bullId, data.group ?? '', now],
    )) as string | null;
    if (nextEntry !== null) await addToBull(decodeEntry(nextEntry));
  };

  const processor =
    (handler: JobHandler) =>
    async (bullJob: BullJob<JobData, void, JobName>, token?: string): Promise<void> => {
      const bullId = bullJob.id!;
      const data = bullJob.data;
      const attempt = Number(
        await run('llmwQueueStart', [keys.jobs, keys.attempts, keys.pending], [data.id, bullId]),
      );
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

  const closeWorkers = async (timeoutMs: number): Promise<void> => {
    if (workers === null) return;
    const current = workers;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, timeoutMs), 'timeout');
    });
    // `pause` stops taking jobs and resolves once the running ones have finished. (`close()`
    // cannot be used for this: once called, a later forced `close(true)` waits for it.)
    const drained = Promise.all(current.map((worker) => worker.pause())).then(() => 'drained' as const);
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
    await Promise.all(current.map((worker) => worker.close(outcome === 'timeout').catch(() => {})));
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
        if (placed === 2) await addToBull(job);
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
      const processJob = processor(handler);
      // The workers share one command connection; each blocks on a connection of its own.
      workers = Array.from({ length: count }, (_, index) => {
        const worker = new Worker<JobData, void, JobName>(queueName, processJob, {
          connection: blockingClient,
          prefix: options.prefix,
          concurrency: Math.floor(concurrency / count) + (index < concurrency % count ? 1 : 0),
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
        return worker;
      });
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
        await closeWorkers(closeOptions?.timeoutMs ?? 10_000);
        await queue.close().catch(() => {});
        workerClient?.disconnect();
        client.disconnect();
      })();
      return closing;
    },
  };
}
