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
 *   batch deletes the row anyway, so the table ends the same, with one statement less. The table,
 *   its statements and those batches: sqlite-job-table.ts.
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
  type JobQueue,
  type JobResult,
  type NewJob,
  type TraceCarrier,
} from './job-queue.js';
import { type Schedulable, Scheduler } from './scheduler.js';
import { describeError, openSqliteJobTable, type TableJob } from './sqlite-job-table.js';

export { QUEUE_MIGRATIONS } from './sqlite-job-table.js';

export interface SqliteJobQueueOptions {
  logger?: Logger;
  /** The queue's table in the file (default `jobs`); each queue of one file has its own. */
  table?: string;
  /** Longest the delay timer sleeps before looking again, against wall-clock jumps (default 60 000). */
  pollIntervalMs?: number;
}

interface Entry extends Schedulable, TableJob {
  name: string;
  /** The trace carrier as stored (JSON), parsed for each run. */
  trace: string | null;
  /** Its run gave its slot back (`Job.yieldSlot`). */
  yielded?: boolean;
}

function parseTrace(text: string | null): TraceCarrier | null {
  if (text === null) return null;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null ? (parsed as TraceCarrier) : null;
  } catch {
    return null;
  }
}

const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
const MAX_TIMER_MS = 2_147_483_647;

export function createSqliteJobQueue(db: SqliteDatabase, options: SqliteJobQueueOptions = {}): JobQueue {
  const logger = options.logger ?? createLogger('silent');
  const table = openSqliteJobTable(db, logger, options.table);
  const pollIntervalMs = Math.max(1, options.pollIntervalMs ?? 60_000);

  const scheduler = new Scheduler<Entry>();
  let handler: JobHandler | null = null;
  let concurrency = 1;
  let active = 0;
  /** Runs among `active` that gave their slot back: they take no place of `concurrency`. */
  let yielded = 0;
  let timer: NodeJS.Timeout | null = null;
  let timerAtMs = Number.POSITIVE_INFINITY;
  let closing = false;
  /** Set once close() stopped waiting: results of handlers still running are dropped. */
  let abandoned = false;
  let closePromise: Promise<void> | null = null;
  let onDrained: (() => void) | null = null;

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
    table.record('delete', entry);
    scheduler.finish(entry, Date.now());
    armTimer();
  };

  const retry = (entry: Entry, delayMs: number): void => {
    const now = Date.now();
    entry.attempt++;
    entry.runAtMs = now + delayMs;
    entry.pendingMark = null;
    table.record('reschedule', entry);
    // A group head stays the head while it waits: the rest of its group waits behind it.
    scheduler.retry(entry, entry.runAtMs, now);
    armTimer();
  };

  const settle = (entry: Entry, outcome: JobResult | { type: 'permanent'; error: unknown }): void => {
    if (abandoned) return;
    active--;
    if (entry.yielded === true) {
      entry.yielded = false;
      yielded--;
    }
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
      trace: parseTrace(entry.trace),
      yieldSlot: () => {
        if (entry.yielded === true || abandoned) return;
        entry.yielded = true;
        yielded++;
        pump();
      },
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
    while (active - yielded < concurrency) {
      const entry = scheduler.next();
      if (entry === undefined) return;
      active++;
      entry.pendingMark = table.record('mark', entry);
      void run(entry, handler);
    }
  };

  return {
    async enqueue(job: NewJob): Promise<boolean> {
      const runAtMs = Date.now() + Math.max(0, job.delayMs ?? 0);
      const group = job.group ?? null;
      const priority = job.priority ?? 'normal';
      const trace = job.trace === undefined ? null : JSON.stringify(job.trace);
      const seq = await table.insert(job.id, job.name, job.taskId, group, priority, runAtMs, trace);
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
          trace,
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
      for (const row of table.all()) {
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
          trace: row.trace,
        });
      }
      if (interrupted > 0) {
        logger.warn({ jobs: interrupted }, 'job queue: running again jobs interrupted by the last shutdown');
        table.recoverInterrupted();
      }
      pump();
    },

    groupPending(group: string): Promise<boolean> {
      return Promise.resolve(handler === null || abandoned || scheduler.hasGroup(group));
    },

    counts(): Promise<JobCounts> {
      if (handler !== null && !abandoned) {
        return Promise.resolve({
          waiting: scheduler.size - active - scheduler.delayedCount,
          active,
          delayed: scheduler.delayedCount,
        });
      }
      return table.counts();
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
        await table.settled();
      })();
      return closePromise;
    },
  };
}
