/**
 * Callback delivery (SPEC §5): POST the task's outcome to its callback URL, signed when a secret
 * is set, recording every attempt. The `webhook-id` is the task id, equal on every retry and
 * every redelivery, so a receiver can drop duplicates of this at-least-once delivery.
 *
 * The `deliver` jobs of catalog.ts run it: the first attempt in the conversation's group of the
 * delivery queue; when that one asks for a retry, a `retry:` job outside the group takes over.
 * Attempt numbers count the attempts recorded on the task, so a run that made no attempt (a
 * crash before it, or a delivery held back) uses up nothing of the retry schedule.
 */
import type { Config } from '../config.js';
import { nextRetryDelayMs } from '../delivery/retry-schedule.js';
import type { CallbackSender } from '../delivery/send-callback.js';
import type { Job, JobQueue, JobResult } from '../queue/job-queue.js';
import { TASK_ERROR_TYPES } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import type { DeliveryAttempt, Store, TaskError, TaskRecord } from '../store/store.js';
import { traceCallbackAttempt } from '../tracing/callback-span.js';
import { deliveryKind, retryJob } from './catalog.js';

export interface DeliverCallbackDeps {
  config: Readonly<Config>;
  logger: Logger;
  store: Store;
  sender: CallbackSender;
  sign: (msgId: string, timestamp: Date, body: string) => Record<string, string>;
  metrics: Metrics;
  /** The delivery queue, where a first delivery's retries are queued. */
  deliveries: JobQueue;
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

export interface Deliverer {
  /**
   * Makes attempt number `attempt` (1-based, what the retry schedule counts) to deliver `task`,
   * whose outcome must be the stored one, and records it; resolves when the delivery ended, or
   * with the delay before the next attempt. A `redelivery` (of a task that had already ended)
   * is not counted again as a completed or failed task.
   */
  attempt(task: TaskRecord, attempt: number, log: Logger, redelivery?: boolean): Promise<JobResult>;
  /** The `deliver` job. */
  job(job: Job): Promise<JobResult>;
}

export function createDeliverer(deps: DeliverCallbackDeps): Deliverer {
  const { config, store, sender, sign, metrics, deliveries } = deps;

  /**
   * Records the attempt and, when `deliveryError` is not `undefined` (delivery ended), the final
   * status, in one write.
   */
  const record = async (
    task: TaskRecord,
    attempt: DeliveryAttempt,
    redelivery: boolean,
    deliveryError?: TaskError | null,
  ): Promise<JobResult> => {
    if (deliveryError === undefined) {
      await store.recordDelivery(task.taskId, attempt);
      return { type: 'done' };
    }
    const succeeded = task.generatedResponse !== null && deliveryError === null;
    // A generation that failed keeps its own error; a failed delivery of a reply records why.
    const error = task.generatedResponse === null ? task.error : deliveryError;
    await store.recordDelivery(task.taskId, attempt, { status: succeeded ? 'completed' : 'failed', error });
    if (redelivery) return { type: 'done' };
    if (succeeded) metrics.tasksCompleted.inc();
    else metrics.tasksFailed.inc({ reason: error?.type ?? 'unknown' });
    return { type: 'done' };
  };

  const attempt = async (
    task: TaskRecord,
    attemptNumber: number,
    log: Logger,
    redelivery = false,
  ): Promise<JobResult> => {
    const body = JSON.stringify(callbackPayload(task));
    const startedAt = new Date();
    const outcome = await traceCallbackAttempt(
      { url: task.callbackUrl, attempt: attemptNumber, propagate: config.callbackTraceparent },
      (traceHeaders) =>
        sender.send(task.callbackUrl, body, Object.assign(sign(task.taskId, startedAt, body), traceHeaders)),
    );
    const made: DeliveryAttempt = {
      at: startedAt.toISOString(),
      ...(outcome.statusCode === undefined ? {} : { status_code: outcome.statusCode }),
      ...(outcome.type === 'delivered' || outcome.error === undefined ? {} : { error: outcome.error }),
      duration_ms: Math.round(outcome.durationMs),
    };
    metrics.callbackAttempts.inc({ outcome: outcome.type });

    switch (outcome.type) {
      case 'delivered':
        log.info({ status_code: outcome.statusCode }, 'callback delivered');
        return record(task, made, redelivery, null);
      case 'failed':
        log.warn({ status_code: outcome.statusCode, error: outcome.error }, 'callback refused; not retried');
        return record(task, made, redelivery, {
          type: TASK_ERROR_TYPES.callbackFailed,
          message: outcome.error,
        });
      case 'retry': {
        const delayMs = nextRetryDelayMs(config.callbackRetryScheduleMs, attemptNumber);
        if (delayMs === null) {
          log.warn({ status_code: outcome.statusCode, error: outcome.error }, 'callback retries spent');
          const reason = outcome.error ?? `HTTP ${outcome.statusCode}`;
          return record(task, made, redelivery, {
            type: TASK_ERROR_TYPES.callbackFailed,
            message: `Callback not delivered: ${reason}`,
          });
        }
        const waitMs = Math.max(delayMs, Math.min(outcome.retryAfterMs ?? 0, 3_600_000));
        log.info(
          { status_code: outcome.statusCode, error: outcome.error, delay_ms: waitMs },
          'callback retry',
        );
        await record(task, made, redelivery);
        return { type: 'retry', delayMs: waitMs };
      }
    }
  };

  return {
    attempt,
    async job(job) {
      const log = deps.logger.child({ task_id: job.taskId, attempt: job.attempt });
      const task = await store.getTaskById(job.taskId);
      if (task === null) {
        log.warn('task record not found; delivery dropped');
        return { type: 'done' };
      }
      const kind = deliveryKind(job);
      if (kind.type !== 'redelivery' && task.status !== 'delivering') {
        // Delivered or given up in an earlier run of this job (or of the first delivery).
        if (task.status === 'completed' || task.status === 'failed') return { type: 'done' };
        // The generation has not ended (a job queued ahead of its outcome): look again soon.
        return { type: 'retry', delayMs: 1000 };
      }
      const attemptNumber =
        kind.type === 'redelivery'
          ? kind.sinceMs === null
            ? job.attempt
            : task.deliveries.filter((made) => Date.parse(made.at) >= kind.sinceMs!).length + 1
          : task.attempts.callback + 1;
      const result = await attempt(task, attemptNumber, log, kind.type === 'redelivery');
      if (result.type === 'retry' && kind.type === 'first') {
        await deliveries.enqueue(retryJob(task.taskId, result.delayMs));
        return { type: 'done' };
      }
      return result;
    },
  };
}
