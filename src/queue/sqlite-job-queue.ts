/**
 * The embedded mode's `JobQueue`. The `jobs` table of the SQLite file is the durable log; an
 * in-memory scheduler holds the runnable state, so dispatching a job costs no query.
 *
 * - `enqueue` inserts through group commit and resolves after COMMIT; only then does the job
 *   enter the scheduler. A finished job is deleted; a retry updates `attempt` and `run_at_ms`.
 * - Scheduler (scheduler.ts, pure): per-group FIFO where only the head may run (a head waiting
 *   for its retry delay blocks its group), two priority lanes, a min-heap of delayed jobs; here,
 *   one timer for the earliest of those and `concurrency` slots. Nothing polls while idle.
 * - A started job is marked `active` in the table. At `consume` every row is loaded; a row still
 *   marked active belonged to a process that died (or closed past its timeout) mid-run, so it runs
 *   again with `attempt + 1`. Only one process uses the file in the embedded mode.
 * - Table writes made for scheduling (active mark, delete, retry) are not awaited before the next
 *   dispatch: group commit keeps them in order, and a crash before they commit only means a job
 *   runs again, which every handler tolerates (at least once). They are gathered into one `write`
 *   per batch, and the active mark of a job that finished before its batch ran is left out: that
 *   batch deletes the row anyway, so the table ends the same, with one statement less.
 */

import type { SqliteDatabase } from '../backends/sqlite/sqlite-database.js';
import { PermanentJobError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { createLogger } from '../shared/logger.js';
import {
  type CloseOptions,
  type ConsumeOptions,
  defaultBackoffMs,
  type Job,
  type JobCounts,
  type JobHandler,
  type JobPriority,
  type JobQueue,
  type JobResult,
  type NewJob,
} from './job-queue.js';
import { type Schedulable, Scheduler } from './scheduler.js';

export interface SqliteJobQueueOptions {
  logger?: Logger;
  /** Longest the delay timer sleeps before looking again, against wall-clock jumps (default 60 000). */
  pollIntervalMs?: number;
}

interface JobRow {
  seq: number;
  id: string;
  name: string;
  task_id: string;
  grp: string | null;
  priority: JobPriority;
  attempt: number;
  run_at_ms: number;
  active: number;
}

interface Entry extends Schedulable {
  name: string;
  taskId: string;
  attempt: number;
  /** This run's active mark while it still waits for its batch. */
  pendingMark: Housekeeping | null;
}

/** A scheduling write waiting for the next batch; `skip` drops an active mark made moot by a delete. */
interface Housekeeping {
  kind: 'mark' | 'delete' | 'reschedule';
  entry: Entry;
  attempt: number;
  runAtMs: number;
  skip: boolean;
}

/**
 * The queue's table, by version (`SqliteDatabase.migrate`). Append only: a released migration
 * is never edited. Version 2 stores each job's lane; rows written before it was stored were
 * deliveries (first) or generations (normal), told apart by their name.
 */
export const QUEUE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    task_id TEXT NOT NULL,
    grp TEXT,
    attempt INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0
  );
  `,
  `
  ALTER TABLE jobs ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
  UPDATE jobs SET priority = 'first' WHERE name = 'deliver';
  `,
];

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const MAX_TIMER_MS = 2_147_483_647;

function describeError(error: unknown): { message: string; name?: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { message: String(error) };
}

export function createSqliteJobQueue(db: SqliteDatabase, options: SqliteJobQueueOptions = {}): JobQueue {
  db.migrate('queue', QUEUE_MIGRATIONS);
  const logger = options.logger ?? createLogger('silent');
  const pollIntervalMs = Math.max(1, options.pollIntervalMs ?? 60_000);

  const insertJob = db.prepare(
    'INSERT OR IGNORE INTO jobs (id, name, task_id, grp, priority, attempt, run_at_ms) VALUES (?, ?, ?, ?, ?, 1, ?)',
  );
  const markActive = db.prepare('UPDATE jobs SET active = 1 WHERE id = ?');
  const deleteJob = db.prepare('DELETE FROM jobs WHERE id = ?');
  const rescheduleJob = db.prepare('UPDATE jobs SET attempt = ?, run_at_ms = ?, active = 0 WHERE id = ?');
  const selectJobs = db.prepare<JobRow>('SELECT * FROM jobs ORDER BY seq');
  const recoverActive = db.prepare('UPDATE jobs SET attempt = attempt + 1, active = 0 WHERE active = 1');
  const countJobs = db.prepare<{ total: number; delayed: number | null }>(
    'SELECT count(*) AS total, sum(run_at_ms > ?) AS delayed FROM jobs',
  );

  const scheduler = new Scheduler<Entry>();
  let handler: JobHandler | null = null;
  let concurrency = 1;
  let active = 0;
  let timer: NodeJS.Timeout | null = null;
  let timerAtMs = Number.POSITIVE_INFINITY;
  let closing = false;
  /** Set once close() stopped waiting: results of handlers still running are dropped. */
  let abandoned = false;
  let closePromise: Promise<void> | null = null;
  let onDrained: (() => void) | null = null;
  const pendingWrites = new Set<Promise<unknown>>();

  /** Runs a table write without holding up dispatch; close() waits for it. */
  const track = (write: Promise<unknown>, onError: (error: unknown) => void): void => {
    const tracked = write.then(() => undefined, onError);
    pendingWrites.add(tracked);
    void tracked.finally(() => pendingWrites.delete(tracked));
  };

  let housekeeping: Housekeeping[] = [];

  const runHousekeeping = (ops: readonly Housekeeping[]): void => {
    for (const op of ops) {
      if (op.skip) continue;
      if (op.kind === 'mark') markActive.run(op.entry.id);
      else if (op.kind === 'delete') deleteJob.run(op.entry.id);
      else rescheduleJob.run(op.attempt, op.runAtMs, op.entry.id);
    }
  };

  /** Queues a scheduling write; the first one of a batch requests the `write` that runs them all. */
  const record = (kind: Housekeeping['kind'], entry: Entry): Housekeeping => {
    const op: Housekeeping = { kind, entry, attempt: entry.attempt, runAtMs: entry.runAtMs, skip: false };
    housekeeping.push(op);
    if (housekeeping.length > 1) return op;
    let ops: Housekeeping[] | null = null;
    track(
      db.write(() => {
        // Taken at the batch, not now, so every op recorded until then shares this write. The
        // batch may run this function twice (after another write threw): it keeps the same ops.
        if (ops === null) {
          ops = housekeeping;
          housekeeping = [];
          for (const taken of ops) if (taken.kind === 'mark') taken.entry.pendingMark = null;
        }
        runHousekeeping(ops);
      }),
      (error: unknown) => {
        if (ops === null) {
          // The batch failed before running this function: these ops are lost, as its writes are.
          ops = housekeeping;
          housekeeping = [];
        }
        const jobs = ops.map((op) => ({ job_id: op.entry.id, task_id: op.entry.taskId, op: op.kind }));
        logger.error({ jobs, err: describeError(error) }, 'job queue: recording job state failed');
      },
    );
    return op;
  };

  const armTimer = (): void => {
    const dueAtMs = scheduler.nextDueAtMs();
    if (dueAtMs === null || closing) {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      timerAtMs = Number.POSITIVE_INFINITY;
      return;
    }
    if (timer !== null && timerAtMs <= dueAtMs) return;
    if (timer !== null) clearTimeout(timer);
    const waitMs = Math.min(Math.max(0, dueAtMs - Date.now()), pollIntervalMs, MAX_TIMER_MS);
    timerAtMs = dueAtMs;
    timer = setTimeout(onTimer, waitMs);
    // The HTTP server keeps the process alive; a far-off retry alone must not.
    timer.unref();
  };

  const onTimer = (): void => {
    timer = null;
    timerAtMs = Number.POSITIVE_INFINITY;
    scheduler.releaseDue(Date.now());
    armTimer();
    pump();
  };

  const add = (entry: Entry): void => {
    if (scheduler.add(entry, Date.now())) armTimer();
  };

  const finish = (entry: Entry): void => {
    if (entry.pendingMark !== null) {
      entry.pendingMark.skip = true;
      entry.pendingMark = null;
    }
    record('delete', entry);
    scheduler.finish(entry, Date.now());
    armTimer();
  };

  const retry = (entry: Entry, delayMs: number): void => {
    const now = Date.now();
    entry.attempt++;
    entry.runAtMs = now + delayMs;
    entry.pendingMark = null;
    record('reschedule', entry);
    // A group head stays the head while it waits: the rest of its group waits behind it.
    scheduler.retry(entry, entry.runAtMs, now);
    armTimer();
  };

  const settle = (entry: Entry, outcome: JobResult | { type: 'permanent'; error: unknown }): void => {
    if (abandoned) return;
    active--;
    switch (outcome.type) {
      case 'done':
        finish(entry);
        break;
      case 'permanent':
        logger.warn(
          {
            job_id: entry.id,
            task_id: entry.taskId,
            attempt: entry.attempt,
            err: describeError(outcome.error),
          },
          'job failed permanently',
        );
        finish(entry);
        break;
      case 'retry':
        retry(entry, Number.isFinite(outcome.delayMs) ? Math.max(0, outcome.delayMs) : 0);
        break;
    }
    if (active === 0 && onDrained !== null) onDrained();
    pump();
  };

  const run = async (entry: Entry, jobHandler: JobHandler): Promise<void> => {
    const job: Job = {
      id: entry.id,
      name: entry.name,
      taskId: entry.taskId,
      group: entry.group,
      attempt: entry.attempt,
    };
    let outcome: JobResult | { type: 'permanent'; error: unknown };
    try {
      const result = await jobHandler(job);
      outcome = result?.type === 'retry' || result?.type === 'done' ? result : { type: 'done' };
    } catch (error) {
      if (error instanceof PermanentJobError) {
        outcome = { type: 'permanent', error };
      } else {
        const delayMs = defaultBackoffMs(entry.attempt);
        logger.error(
          {
            job_id: entry.id,
            task_id: entry.taskId,
            attempt: entry.attempt,
            delay_ms: delayMs,
            err: describeError(error),
          },
          'job handler threw; retrying',
        );
        outcome = { type: 'retry', delayMs };
      }
    }
    settle(entry, outcome);
  };

  const pump = (): void => {
    if (handler === null || closing) return;
    while (active < concurrency) {
      const entry = scheduler.next();
      if (entry === undefined) return;
      active++;
      entry.pendingMark = record('mark', entry);
      void run(entry, handler);
    }
  };

  return {
    async enqueue(job: NewJob): Promise<boolean> {
      const runAtMs = Date.now() + Math.max(0, job.delayMs ?? 0);
      const group = job.group ?? null;
      const priority = job.priority ?? 'normal';
      const seq = await db.write(() => {
        const result = insertJob.run(job.id, job.name, job.taskId, group, priority, runAtMs);
        return result.changes === 0 ? null : Number(result.lastInsertRowid);
      });
      if (seq === null) return false;
      // Before consume() the table is the whole state; consume() loads it.
      if (handler !== null && !closing) {
        add({
          seq,
          id: job.id,
          name: job.name,
          taskId: job.taskId,
          group,
          priority,
          attempt: 1,
          runAtMs,
          pendingMark: null,
        });
        pump();
      }
      return true;
    },

    consume(jobHandler: JobHandler, consumeOptions: ConsumeOptions): void {
      if (handler !== null) throw new Error('consume() was already called on this queue');
      if (closing) throw new Error('The queue is closed');
      handler = jobHandler;
      concurrency = Math.max(1, Math.floor(consumeOptions.concurrency));
      let interrupted = 0;
      for (const row of selectJobs.all()) {
        if (row.active) interrupted++;
        add({
          seq: row.seq,
          id: row.id,
          name: row.name,
          taskId: row.task_id,
          group: row.grp,
          priority: row.priority,
          attempt: row.active ? row.attempt + 1 : row.attempt,
          runAtMs: row.run_at_ms,
          pendingMark: null,
        });
      }
      if (interrupted > 0) {
        logger.warn({ jobs: interrupted }, 'job queue: running again jobs interrupted by the last shutdown');
        track(
          db.write(() => recoverActive.run()),
          (error: unknown) => {
            logger.error({ err: describeError(error) }, 'job queue: recording interrupted jobs failed');
          },
        );
      }
      pump();
    },

    counts(): Promise<JobCounts> {
      if (handler !== null && !abandoned) {
        return Promise.resolve({
          waiting: scheduler.size - active - scheduler.delayedCount,
          active,
          delayed: scheduler.delayedCount,
        });
      }
      return db.read(() => {
        const row = countJobs.get(Date.now());
        const total = row?.total ?? 0;
        const later = row?.delayed ?? 0;
        return { waiting: total - later, active: 0, delayed: later };
      });
    },

    ping(): Promise<void> {
      return db.ping();
    },

    close(closeOptions?: CloseOptions): Promise<void> {
      if (closePromise !== null) return closePromise;
      closing = true;
      armTimer();
      const timeoutMs = Math.max(0, closeOptions?.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
      closePromise = (async () => {
        if (active > 0) {
          let timeout: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            onDrained = resolve;
            timeout = setTimeout(resolve, timeoutMs);
          });
          clearTimeout(timeout);
          onDrained = null;
        }
        if (active > 0) {
          logger.warn(
            { jobs: active },
            'job queue: handlers still running at close; their jobs will run again',
          );
        }
        // Their rows stay marked active and run again at the next start; late results are dropped.
        abandoned = true;
        await Promise.all(pendingWrites);
      })();
      return closePromise;
    },
  };
}
