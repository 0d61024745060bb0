/**
 * THE queue seam. Every driver (SQLite for the embedded mode, BullMQ for the redis mode)
 * implements `JobQueue` and passes `defineJobQueueContractTests` (job-queue.contract.ts).
 *
 * Invariants every driver keeps:
 * - Durable: once `enqueue` resolves, the job survives a SIGKILL of any process; a job that was
 *   running when its process died runs again (at least once).
 * - Deduplicated: a second `enqueue` with the id of a job that still exists is a no-op.
 * - Ordered groups: jobs sharing a `group` run one at a time, in `enqueue` order; a job waiting
 *   for its retry delay keeps its group blocked. Jobs of different groups (or without a group)
 *   run in parallel, up to `concurrency` per consumer process.
 * - Priority: a waiting `first` job runs before a waiting `normal` one. (The service keeps
 *   generations and deliveries in queues of their own instead, each with its own slots.)
 * - A job's `name` is the handler's business: the queue stores and returns it, and never reads it.
 * - Retries: a handler returning `{ type: 'retry', delayMs }` runs again after the delay with
 *   `attempt + 1`; a handler throwing `PermanentJobError` ends the job; any other throw is retried
 *   with a backoff (`defaultBackoffMs`).
 * - A job's `trace` carrier is stored with it as durably as the job, and handed to every run of
 *   it (retries and runs after a restart included); like `name`, the queue never reads it.
 */

/** Trace context stored with a job (W3C `traceparent`, `tracestate`), as text. */
export type TraceCarrier = Readonly<Record<string, string>>;

/** A job's lane: a waiting `first` job runs before any waiting `normal` one. */
export type JobPriority = 'first' | 'normal';

export interface NewJob {
  /** Unique id; enqueueing an id that still exists does nothing. */
  id: string;
  /** What the handler is to do; opaque to the queue. */
  name: string;
  taskId: string;
  /** Jobs of one group run one at a time in enqueue order (a conversation). */
  group?: string | undefined;
  /** Default `normal`. */
  priority?: JobPriority | undefined;
  /** Run no sooner than this many milliseconds from now. */
  delayMs?: number | undefined;
  /** The trace context the job was enqueued in; opaque to the queue. */
  trace?: TraceCarrier | undefined;
}

export interface Job {
  id: string;
  name: string;
  taskId: string;
  group: string | null;
  /** 1 on the first run, then +1 on every retry or restart of the job. */
  attempt: number;
  /** The carrier it was enqueued with, or `null`. */
  trace: TraceCarrier | null;
  /**
   * Hands this run's slot back while the job goes on: the consumer may start another job in its
   * place, and this one still ends (and its group stays blocked) only when its handler returns.
   * For a run that is left waiting on something other than its own work (a callback attempt
   * after a generation). A second call does nothing.
   */
  yieldSlot(): void;
}

export type JobResult = { type: 'done' } | { type: 'retry'; delayMs: number };

export type JobHandler = (job: Job) => Promise<JobResult>;

export interface JobCounts {
  waiting: number;
  active: number;
  delayed: number;
}

export interface ConsumeOptions {
  /** Most jobs run at once by this process. */
  concurrency: number;
}

export interface CloseOptions {
  /** How long to wait for running handlers before handing their jobs back to the queue. */
  timeoutMs: number;
}

/** Backoff for a handler that threw something other than `PermanentJobError`. */
export function defaultBackoffMs(attempt: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempt - 1), 60_000);
}

export interface JobQueue {
  /** Stores the job durably; resolves once it would survive a crash. Resolves `false` for a duplicate id. */
  enqueue(job: NewJob): Promise<boolean>;
  /** Starts running jobs with `handler` in this process. Called at most once. */
  consume(handler: JobHandler, options: ConsumeOptions): void;
  /**
   * Whether jobs of `group` are waiting, delayed or running (`true` when this process cannot
   * tell, before `consume`). Nothing else can add to the group meanwhile when the caller is the
   * only one that does (the service: the generation of the conversation's current message).
   */
  groupPending(group: string): Promise<boolean>;
  /** Jobs not finished: waiting to run, running, and waiting for a delay (group-blocked jobs count as waiting). */
  counts(): Promise<JobCounts>;
  /** Resolves when the backend answers; rejects with `BackendUnavailableError` otherwise. */
  ping(): Promise<void>;
  /**
   * Stops taking new jobs, waits up to `timeoutMs` for running handlers, hands unfinished jobs
   * back to the queue (they run again later), and releases connections. Idempotent.
   */
  close(options?: CloseOptions): Promise<void>;
}
