/**
 * The registry in Redis that gives the BullMQ driver what open-source BullMQ lacks:
 * deduplication that lasts exactly as long as the job, and ordered groups across any number of
 * processes. It owns the `lw:*` keys, the encoding of their entries, and the Lua scripts
 * (`scripts/*.lua`, one per step, each with its KEYS, ARGV and return value at the top). It knows
 * BullMQ only as far as its job keys (`<prefix>:<queue>:<bullId>`), which the sweeps check; the
 * adapter (`bullmq-job-queue.ts`) adds the jobs to BullMQ.
 *
 * DESIGN
 *
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
 * - start: ONE script checks that the job is still registered under this BullMQ id (a stale copy
 *   re-added by a repair is skipped), increments its attempt counter and clears `lw:pending`.
 * - finish: ONE script removes the job from the registry, pops it off its group list and records
 *   the next id of the group in `lw:pending`, which is then added to BullMQ. The adapter runs it
 *   BEFORE the job is acknowledged to BullMQ.
 * - A job waiting for a retry stays the group head, so the group stays blocked until it ends.
 * - hold: a run acknowledged to BullMQ before its handler ended (a first delivery after the
 *   generation, `bullmq-job-queue.ts`) is recorded in `lw:pending` with a score in the future,
 *   renewed while it runs; `finish` clears it.
 * - sweeps: `lw:pending` ids older than a grace period whose BullMQ job is missing, and group
 *   heads whose BullMQ job is missing, are returned to be added. Each batch of ids or groups is
 *   checked by ONE script, so a sweep over thousands of groups costs a few round trips.
 *
 * FAILURE CASES
 *
 * - An API process dies between the enqueue script and the BullMQ add: the id is in
 *   `lw:pending` (and heads its group); the next sweep adds it. Nothing is lost, the group waits.
 * - A worker dies after the finish script but before the next job's add: the next id is in
 *   `lw:pending`; a sweep adds it. Before the BullMQ acknowledgement: the job runs again as a
 *   stale copy, whose start script finds it unregistered, so it is acknowledged without running.
 * - A sweep re-adds a job that finished meanwhile: same as above, a stale copy, skipped.
 * - A worker dies while it holds a run outside BullMQ: its hold is no longer renewed; once it is
 *   older than the grace period the pending sweep adds the job back, and it runs again.
 * - BullMQ fails or drops a head for any other reason: the group sweep re-adds it.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { bindScripts, type ScriptArg } from '../../backends/redis/redis-scripts.js';
import type { JobPriority, TraceCarrier } from '../job-queue.js';

/** What BullMQ carries for a job. */
export interface JobData {
  id: string;
  name: string;
  taskId: string;
  group: string | null;
  /** Absent from jobs registered before the seam carried it: they run as `normal`. */
  priority?: JobPriority;
  /** The trace carrier the job was enqueued with; absent without one. */
  trace?: TraceCarrier;
}

/** A job's entry in `lw:jobs`. */
export interface RegisteredJob extends JobData {
  bullId: string;
  /** Epoch ms before which the job must not run. */
  runAtMs: number;
}

/** Where an enqueue left the job: a duplicate, behind its group head, or to add to BullMQ now. */
export type EnqueueOutcome = 'duplicate' | 'waiting' | 'add';

export interface GroupRegistry {
  /** Registers a job unless its id is registered already. */
  enqueue(job: RegisteredJob, nowMs: number): Promise<EnqueueOutcome>;
  /** Counts a run of the job; 0 for a stale copy (not registered under `bullId`). */
  start(id: string, bullId: string): Promise<number>;
  /** Ends the job; returns the next head of its group to add to BullMQ, if any. */
  finish(job: Pick<JobData, 'id' | 'group'>, bullId: string, nowMs: number): Promise<RegisteredJob | null>;
  /** One batch of old `lw:pending` jobs missing from BullMQ; more may follow a full batch. */
  sweepPending(nowMs: number): Promise<RegisteredJob[]>;
  /** One `SSCAN` step over the groups: the heads missing from BullMQ, and the next cursor. */
  sweepGroups(cursor: string): Promise<{ cursor: string; missing: RegisteredJob[] }>;
  /**
   * Holds jobs that run outside BullMQ (acknowledged to it early, see `bullmq-job-queue.ts`) in
   * `lw:pending` until `untilMs`: the sweeps leave them alone until then plus the grace period,
   * and add them back after (their process died). `renew`: only those still held.
   */
  hold(ids: readonly string[], untilMs: number, renew: boolean): Promise<void>;
  /** Ends the holds of `ids` (those still held): the pending sweep adds them back from `atMs` on. */
  release(ids: readonly string[], atMs: number): Promise<void>;
  /** The number of unfinished jobs, and how many of them are held now (running outside BullMQ). */
  countUnfinished(nowMs: number): Promise<{ total: number; held: number }>;
  /** Whether group `group` has jobs (waiting, delayed or running). */
  groupPending(group: string): Promise<boolean>;
}

/** A `lw:pending` entry younger than this is left to the process that is adding it. */
const PENDING_GRACE_MS = 3000;
/** Entries of `lw:pending` and groups handled per repair sweep step. */
export const REPAIR_BATCH = 500;

const loadScript = (name: string): string =>
  readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');

const SCRIPTS = {
  llmwQueueEnqueue: { keys: 4, lua: loadScript('enqueue') },
  llmwQueueStart: { keys: 3, lua: loadScript('start') },
  llmwQueueFinish: { keys: 5, lua: loadScript('finish') },
  llmwQueueSweepPending: { keys: 2, lua: loadScript('sweep-pending') },
  llmwQueueSweepGroups: { keys: 3, lua: loadScript('sweep-groups') },
} as const;

type ScriptName = keyof typeof SCRIPTS;

function encodeEntry(job: RegisteredJob): string {
  return `${job.bullId}|${JSON.stringify(job)}`;
}

function decodeEntry(entry: string): RegisteredJob {
  return JSON.parse(entry.slice(entry.indexOf('|') + 1)) as RegisteredJob;
}

/**
 * The registry under `base` (`<prefix>:<queue>`), on `client`, the command connection, which runs
 * its scripts.
 */
export function createGroupRegistry(client: Redis, base: string): GroupRegistry {
  const keys = {
    jobs: `${base}:lw:jobs`,
    attempts: `${base}:lw:attempts`,
    pending: `${base}:lw:pending`,
    groups: `${base}:lw:groups`,
    group: (group: string | null) => `${base}:lw:group:${group ?? ''}`,
  };
  const bullKeyBase = `${base}:`;

  const scripts = bindScripts(client, SCRIPTS);
  const run = (name: ScriptName, scriptKeys: string[], args: ScriptArg[]): Promise<unknown> =>
    scripts[name](...scriptKeys, ...args);

  return {
    async enqueue(job, nowMs) {
      const placed = await run(
        'llmwQueueEnqueue',
        [keys.jobs, keys.pending, keys.groups, keys.group(job.group)],
        [job.id, encodeEntry(job), job.group ?? '', nowMs],
      );
      if (placed === null) return 'duplicate';
      return placed === 2 ? 'add' : 'waiting';
    },

    async start(id, bullId) {
      return Number(await run('llmwQueueStart', [keys.jobs, keys.attempts, keys.pending], [id, bullId]));
    },

    async finish(job, bullId, nowMs) {
      const nextEntry = (await run(
        'llmwQueueFinish',
        [keys.jobs, keys.attempts, keys.pending, keys.groups, keys.group(job.group)],
        [job.id, bullId, job.group ?? '', nowMs],
      )) as string | null;
      return nextEntry === null ? null : decodeEntry(nextEntry);
    },

    async sweepPending(nowMs) {
      const missing = (await run(
        'llmwQueueSweepPending',
        [keys.jobs, keys.pending],
        [bullKeyBase, nowMs - PENDING_GRACE_MS, REPAIR_BATCH],
      )) as string[];
      return missing.map(decodeEntry);
    },

    async sweepGroups(cursor) {
      const [next, groups] = await client.sscan(keys.groups, cursor, 'COUNT', REPAIR_BATCH);
      if (groups.length === 0) return { cursor: next, missing: [] };
      const missing = (await run(
        'llmwQueueSweepGroups',
        [keys.jobs, keys.groups, keys.pending],
        [bullKeyBase, keys.group(''), ...groups],
      )) as string[];
      return { cursor: next, missing: missing.map(decodeEntry) };
    },

    async hold(ids, untilMs, renew) {
      if (ids.length === 0) return;
      const members = ids.flatMap((id) => [untilMs, id]);
      if (renew) await client.zadd(keys.pending, 'XX', ...members);
      else await client.zadd(keys.pending, ...members);
    },

    async release(ids, atMs) {
      if (ids.length === 0) return;
      await client.zadd(keys.pending, 'XX', ...ids.flatMap((id) => [atMs - PENDING_GRACE_MS, id]));
    },

    async countUnfinished(nowMs) {
      const [total, held] = await Promise.all([
        client.hlen(keys.jobs),
        client.zcount(keys.pending, `(${nowMs}`, '+inf'),
      ]);
      return { total, held };
    },
    groupPending: async (group) => (await client.exists(keys.group(group))) === 1,
  };
}
