/**
 * Callback delivery (SPEC §5, §9): POST the task's outcome to its callback URL, signed when a
 * secret is set, recording every attempt. The `webhook-id` is the task id, equal on every retry
 * and every redelivery, so a receiver can drop duplicates of this at-least-once delivery.
 *
 * The generation's run makes a task's first attempt (`first`) when the destination's gate lets
 * it through at once; the `deliver` jobs of catalog.ts make the rest, one per task in its
 * conversation's group of the delivery queue (so a conversation's callbacks go out one at a time,
 * in order, retries included), or one per redelivery, outside any group. Each attempt passes the destination's gate (destinations/delivery-gate.ts) first: a delivery
 * held by an open breaker, or waiting for a place in flight, makes no attempt and waits in the
 * queue without a worker slot. Attempt numbers count the attempts recorded on the task, so such a
 * wait (or a crash before an attempt) uses up nothing of the retry schedule. A held delivery
 * fails once its delivery window, the sum of the schedule, has passed.
 */
import type { Config } from '../config.js';
import { nextRetryDelayMs } from '../delivery/retry-schedule.js';
import type { CallbackSender, DeliveryOutcome } from '../delivery/send-callback.js';
import type { DeliveryGate, GateEntry, GateOutcome } from '../destinations/delivery-gate.js';
import { destinationOf } from '../destinations/destination.js';
import type { DestinationStore } from '../destinations/destination-store.js';
import type { Job, JobResult } from '../queue/job-queue.js';
import { TASK_ERROR_TYPES } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import type { DeliveryAttempt, Store, TaskError, TaskRecord } from '../store/store.js';
import { createCallbackTracer } from '../tracing/callback-span.js';
import { traceEvent } from '../tracing/spans.js';
import { deliveryKind } from './catalog.js';

export interface DeliverCallbackDeps {
  config: Readonly<Config>;
  logger: Logger;
  store: Store;
  sender: CallbackSender;
  sign: (msgId: string, timestamp: Date, body: string) => Record<string, string>;
  metrics: Metrics;
  gate: DeliveryGate;
  destinations: DestinationStore;
  /** Default `Math.random`: the retry jitter. */
  random?: () => number;
}

/** The JSON body POSTed to the callback URL. */
export function callbackPayload(task: TaskRecord): Record<string, unknown> {
  const common = {
    task_id: task.taskId,
    conversation_id: task.conversationId,
    metadata: task.metadata ?? {},
    created_at: task.createdAt,
    completed_at: task.completedAt,
  };
  if (task.generatedResponse !== null) {
    return {
      ...common,
      status: 'completed',
      generated_response: task.generatedResponse,
      model: task.model,
      usage: task.usage,
    };
  }
  return {
    ...common,
    status: 'failed',
    error: task.error ?? { type: 'unknown', message: 'The task failed' },
  };
}

/** Retry delays vary by this share either way, so retries after an outage do not all land at once. */
export const RETRY_JITTER = 0.2;

/** After a failed probe, the delivery looks at its (re-opened) breaker again this soon. */
const PROBE_FAILED_RECHECK_MS = 100;

/** Attempts that count against a retry schedule: all but failed probes, made at or after `sinceMs`. */
export function scheduledAttempts(task: TaskRecord, sinceMs: number | null): number {
  return task.deliveries.filter(
    (made) => made.probe !== true && (sinceMs === null || Date.parse(made.at) >= sinceMs),
  ).length;
}

/** What the breaker counts of an attempt: any answer but a failing one is a live receiver. */
function gateOutcome(outcome: DeliveryOutcome): GateOutcome {
  if (outcome.type === 'delivered') return { ok: true };
  if (outcome.type === 'failed') return outcome.statusCode === undefined ? null : { ok: true };
  return { ok: false, error: outcome.error ?? `HTTP ${outcome.statusCode}` };
}

/** How a first attempt made at once went: the delivery ended, or it is to be queued (after `delayMs`). */
export type FirstDelivery = { type: 'ended' } | { type: 'queue'; delayMs: number };

export interface Deliverer {
  /** The `deliver` job. */
  job(job: Job): Promise<JobResult>;
  /**
   * The first attempt of a task's delivery, made at once by the run that stored its outcome,
   * when its destination is healthy and has a place in flight (`DeliveryGate.enterNow`);
   * otherwise (or when the attempt is to be retried) the caller queues the delivery job.
   */
  first(task: TaskRecord, run: FirstDeliveryRun): Promise<FirstDelivery>;
}

/** What `Deliverer.first` needs of the run that stored the outcome. */
export interface FirstDeliveryRun {
  /** Whether an earlier delivery of the conversation is still queued (the attempt would overtake it). */
  behindQueued(): Promise<boolean>;
  /** Hands the run's generation slot back; called once the attempt is about to be made. */
  yieldSlot(): void;
}

export function createDeliverer(deps: DeliverCallbackDeps): Deliverer {
  const { config, store, sender, sign, metrics, gate, destinations } = deps;
  const random = deps.random ?? Math.random;
  const traceAttempt = createCallbackTracer(config.tracing);
  const windowMs = config.callbackRetryScheduleMs.reduce((sum, delay) => sum + delay, 0);

  /** Ends the delivery for good: `error` (null: delivered) with the attempt that ended it, if any. */
  const end = async (
    task: TaskRecord,
    redelivery: boolean,
    deliveryError: TaskError | null,
    made: DeliveryAttempt | null,
  ): Promise<JobResult> => {
    const succeeded = task.generatedResponse !== null && deliveryError === null;
    // A generation that failed keeps its own error; a failed delivery of a reply records why.
    const error = task.generatedResponse === null ? task.error : deliveryError;
    const status = succeeded ? 'completed' : 'failed';
    if (made === null) await store.setStatus(task.taskId, status, error);
    else await store.recordDelivery(task.taskId, made, { status, error });
    if (redelivery) return { type: 'done' };
    if (succeeded) metrics.tasksCompleted.inc();
    else metrics.tasksFailed.inc({ reason: error?.type ?? 'unknown' });
    return { type: 'done' };
  };

  /** Makes attempt number `attemptNumber` through the gate's `entry`, records it, and says what next. */
  const attempt = async (
    task: TaskRecord,
    attemptNumber: number,
    entry: Extract<GateEntry, { type: 'go' }>,
    log: Logger,
    redelivery: boolean,
  ): Promise<JobResult> => {
    const body = JSON.stringify(callbackPayload(task));
    const startedAt = new Date();
    let outcome: DeliveryOutcome;
    try {
      outcome = await traceAttempt(
        {
          url: task.callbackUrl,
          attempt: attemptNumber,
          propagate: config.callbackTraceparent,
          probe: entry.probe,
        },
        (traceHeaders) =>
          sender.send(
            task.callbackUrl,
            body,
            Object.assign(sign(task.taskId, startedAt, body), traceHeaders),
          ),
      );
    } finally {
      // For a throw too: the place in flight is never kept (it would expire, later).
      await entry.release().catch(() => {});
    }
    // The breaker missing one count is better than the delivery running again.
    await gate
      .settle(entry, gateOutcome(outcome))
      .catch((error: unknown) => log.warn({ err: error }, 'could not count the callback outcome'));
    const made: DeliveryAttempt = {
      at: startedAt.toISOString(),
      ...(outcome.statusCode === undefined ? {} : { status_code: outcome.statusCode }),
      ...(outcome.type === 'delivered' || outcome.error === undefined ? {} : { error: outcome.error }),
      duration_ms: Math.round(outcome.durationMs),
      ...(entry.probe ? { probe: true as const } : {}),
    };
    metrics.callbackAttempts.inc({ outcome: outcome.type });
    const context = { status_code: outcome.statusCode, destination: entry.ref.destination };

    switch (outcome.type) {
      case 'delivered':
        log.info(context, 'callback delivered');
        return end(task, redelivery, null, made);
      case 'failed':
        log.warn({ ...context, error: outcome.error }, 'callback refused; not retried');
        return end(task, redelivery, { type: TASK_ERROR_TYPES.callbackFailed, message: outcome.error }, made);
      case 'retry': {
        if (entry.probe) {
          // The destination is still down: the delivery is held again (oldest first, so it will
          // probe again), its own schedule untouched.
          log.info({ ...context, error: outcome.error }, 'callback probe failed; held again');
          await store.recordDelivery(task.taskId, made);
          return { type: 'retry', delayMs: PROBE_FAILED_RECHECK_MS };
        }
        const delayMs = nextRetryDelayMs(config.callbackRetryScheduleMs, attemptNumber);
        if (delayMs === null) {
          log.warn({ ...context, error: outcome.error }, 'callback retries spent');
          const reason = outcome.error ?? `HTTP ${outcome.statusCode}`;
          return end(
            task,
            redelivery,
            { type: TASK_ERROR_TYPES.callbackFailed, message: `Callback not delivered: ${reason}` },
            made,
          );
        }
        const jittered = Math.round(delayMs * (1 - RETRY_JITTER + 2 * RETRY_JITTER * random()));
        const waitMs = Math.max(
          jittered,
          Math.min(outcome.retryAfterMs ?? 0, config.callbackRetryAfterMaxMs),
        );
        log.info({ ...context, error: outcome.error, delay_ms: waitMs }, 'callback retry');
        await store.recordDelivery(task.taskId, made);
        return { type: 'retry', delayMs: waitMs };
      }
    }
  };

  /**
   * First attempts in flight (or waiting for a place) in this process: past as many as the
   * worker has generation or delivery slots, whichever is more, deliveries are queued.
   */
  let firstInFlight = 0;
  const firstMax = Math.max(config.deliveryConcurrency, config.workerConcurrency);

  return {
    async first(task, run) {
      if (firstInFlight >= firstMax) return { type: 'queue', delayMs: 0 };
      firstInFlight++;
      try {
        if (await run.behindQueued()) return { type: 'queue', delayMs: 0 };
        const ref = { namespace: task.namespace, destination: destinationOf(task.callbackUrl) };
        const entry = await gate.enterNow(ref);
        if (entry === null) return { type: 'queue', delayMs: 0 };
        run.yieldSlot();
        const log = deps.logger.child({ task_id: task.taskId, attempt: 1 });
        const result = await attempt(task, 1, entry, log, false);
        return result.type === 'done' ? { type: 'ended' } : { type: 'queue', delayMs: result.delayMs };
      } finally {
        firstInFlight--;
      }
    },

    async job(job) {
      const log = deps.logger.child({ task_id: job.taskId, attempt: job.attempt });
      const task = await store.getTaskById(job.taskId);
      if (task === null) {
        log.warn('task record not found; delivery dropped');
        return { type: 'done' };
      }
      const kind = deliveryKind(job);
      const redelivery = kind.type === 'redelivery';
      if (!redelivery && task.status !== 'delivering') {
        // Delivered or given up in an earlier run of this job (or of the first delivery).
        if (task.status === 'completed' || task.status === 'failed') return { type: 'done' };
        // The generation has not ended (a job queued ahead of its outcome): look again soon.
        return { type: 'retry', delayMs: 1000 };
      }
      const since = kind.type === 'redelivery' ? kind.sinceMs : null;
      const attemptNumber = redelivery && since === null ? job.attempt : scheduledAttempts(task, since) + 1;

      const ref = { namespace: task.namespace, destination: destinationOf(task.callbackUrl) };
      // Runs of this job since its last attempt: how long it has been waiting for its destination.
      const waits = Math.max(0, job.attempt - attemptNumber);
      const entry = await gate.enter(ref, job.id, waits);
      const nowMs = Date.now();
      if (entry.type === 'busy') {
        traceEvent('callback.destination_busy', { destination: ref.destination, wait_ms: entry.retryInMs });
        return { type: 'retry', delayMs: entry.retryInMs };
      }
      if (entry.type === 'held') {
        traceEvent('callback.held', {
          destination: ref.destination,
          until: new Date(entry.untilMs).toISOString(),
        });
        const windowStartMs = since ?? Date.parse(task.completedAt ?? task.createdAt);
        const deadlineMs = windowStartMs + windowMs;
        if (nowMs < deadlineMs) {
          log.debug(
            { destination: ref.destination, until: new Date(entry.untilMs).toISOString() },
            'callback held',
          );
          return { type: 'retry', delayMs: Math.max(1, Math.min(entry.untilMs, deadlineMs) - nowMs) };
        }
        await destinations.unhold(ref, job.id);
        log.warn({ destination: ref.destination }, 'callback held past its delivery window; given up');
        return end(
          task,
          redelivery,
          {
            type: TASK_ERROR_TYPES.destinationUnavailable,
            message: `Callback not delivered: the destination ${ref.destination} was unavailable (circuit breaker open) for the whole delivery window`,
          },
          null,
        );
      }
      return attempt(task, attemptNumber, entry, log, redelivery);
    },
  };
}
