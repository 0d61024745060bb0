/**
 * The `generate` job (SPEC §4): load the conversation's history, ask the LLM, store the exchange,
 * and queue the delivery of the outcome (catalog.ts: a `deliver` job in the conversation's group
 * of the delivery queue). The job ends only after that delivery is queued, so a crash before then
 * runs it again. Every step is safe to run again: a task whose generation already ended only
 * makes sure its delivery is queued (or does nothing when its delivery ended too).
 *
 * The conversation's next message waits only for this job, never for a receiver.
 *
 * The LLM retry schedule and the fallback models are derived from the job's attempt number, so
 * nothing about them needs storing: with a schedule of n delays, attempts 1..n+1 use the first
 * model, the next n+1 the first fallback, and so on. Retries go back through the queue, which
 * keeps the conversation's later messages waiting behind this one.
 */
import type { Config } from '../config.js';
import type { ChatMessage, LlmClient, LlmCompletion } from '../llm/llm-client.js';
import { LlmError } from '../llm/llm-errors.js';
import type { Job, JobQueue, JobResult } from '../queue/job-queue.js';
import { LLM_ERROR_TYPES } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import { conversationKey, type Store, type TaskError, type TaskRecord } from '../store/store.js';
import { createChatTracer } from '../tracing/llm-span.js';
import { deliveryJob } from './catalog.js';

export interface GenerateReplyDeps {
  config: Readonly<Config>;
  logger: Logger;
  store: Store;
  /** The delivery queue, where the outcome's delivery is queued. */
  deliveries: JobQueue;
  llm: LlmClient;
  metrics: Metrics;
}

/** Attempts after which a job whose task record never appeared is dropped. */
const MISSING_TASK_ATTEMPTS = 5;

export interface ModelPlan {
  model: string;
  /** Delay before the next attempt when this one fails with a retryable error; `null`: none left. */
  retryDelayMs: number | null;
}

/** Which model attempt `attempt` (1-based) uses, and how long to wait before the next one. */
export function planAttempt(
  attempt: number,
  models: readonly string[],
  scheduleMs: readonly number[],
): ModelPlan | null {
  const perModel = scheduleMs.length + 1;
  const modelIndex = Math.floor((attempt - 1) / perModel);
  const model = models[modelIndex];
  if (model === undefined) return null;
  const retryIndex = (attempt - 1) % perModel;
  if (retryIndex < scheduleMs.length) return { model, retryDelayMs: scheduleMs[retryIndex]! };
  // This model's retries are spent: the next model, if any, is tried at once.
  return { model, retryDelayMs: modelIndex + 1 < models.length ? 0 : null };
}

export function createGenerateReply(deps: GenerateReplyDeps): (job: Job) => Promise<JobResult> {
  const { config, store, deliveries, llm, metrics } = deps;
  const models = [config.llmModel, ...config.llmFallbackModels];
  const traceChat = createChatTracer(config.llmBaseUrl, config.tracing);

  /** Queues the task's delivery (a no-op when it is queued already); the job is done. */
  const handOver = async (task: TaskRecord): Promise<JobResult> => {
    await deliveries.enqueue(deliveryJob(task.taskId, conversationKey(task.namespace, task.conversationId)));
    return { type: 'done' };
  };

  const fail = async (task: TaskRecord, error: TaskError, log: Logger): Promise<JobResult> => {
    log.warn({ err_type: error.type }, `task failed: ${error.message}`);
    const completedAt = new Date().toISOString();
    await store.failGeneration(task.taskId, error, completedAt);
    return handOver(task);
  };

  return async (job) => {
    const log = deps.logger.child({ task_id: job.taskId, attempt: job.attempt });
    const task = await store.getTaskById(job.taskId);
    if (task === null) {
      // The queue and the store are written side by side at accept time; give the record a
      // moment to appear, then drop a job whose task was never stored or has expired.
      if (job.attempt < MISSING_TASK_ATTEMPTS) return { type: 'retry', delayMs: 200 * job.attempt };
      log.warn('task record not found; job dropped');
      return { type: 'done' };
    }
    if (task.status === 'delivering') return handOver(task);
    // Generated and delivered (or given up) in an earlier run of this job.
    if (task.status === 'completed' || task.status === 'failed') return { type: 'done' };

    const plan = planAttempt(job.attempt, models, config.llmRetryScheduleMs);
    if (plan === null) {
      return fail(task, { type: 'llm_unavailable', message: 'LLM retries spent' }, log);
    }

    const key = conversationKey(task.namespace, task.conversationId);
    const history = await store.getHistory(key, config.historyMaxMessages);
    metrics.historyMessages.observe(history.length);
    const messages: ChatMessage[] = [];
    if (config.systemPrompt !== '') messages.push({ role: 'system', content: config.systemPrompt });
    for (const entry of history) messages.push({ role: entry.role, content: entry.content });
    messages.push({ role: 'user', content: task.message });

    // Written while the LLM works (counting the call, and `queued` becomes `processing`); awaited
    // before the outcome is stored, so it lands first and a failed write still fails the job.
    const marked = store.recordLlmAttempt(task.taskId);
    // Only so an early rejection is not reported as unhandled: every path below awaits `marked`.
    marked.catch(() => {});
    log.info({ model: plan.model, history: history.length }, 'calling LLM');
    log.debug({ message: task.message }, 'prompt');
    const startedAt = performance.now();
    let result: LlmCompletion;
    try {
      result = await traceChat(
        { model: plan.model, conversationId: task.conversationId, attempt: job.attempt },
        () => llm.complete({ model: plan.model, messages }),
      );
    } catch (error) {
      await marked;
      const llmError =
        error instanceof LlmError
          ? error
          : new LlmError({
              type: LLM_ERROR_TYPES.unexpected,
              message: String(error),
              retryable: true,
              cause: error,
            });
      metrics.llmCallDuration.observe(
        { model: plan.model, outcome: llmError.type },
        (performance.now() - startedAt) / 1000,
      );
      if (llmError.retryable && plan.retryDelayMs !== null) {
        const delayMs = Math.max(plan.retryDelayMs, llmError.retryAfterMs ?? 0);
        log.warn(
          { err_type: llmError.type, status: llmError.status, delay_ms: delayMs },
          'LLM call failed; retrying',
        );
        return { type: 'retry', delayMs };
      }
      return fail(task, { type: llmError.type, message: llmError.message }, log);
    }
    metrics.llmCallDuration.observe(
      { model: plan.model, outcome: 'success' },
      (performance.now() - startedAt) / 1000,
    );
    log.info({ model: result.model }, 'LLM replied');
    log.debug({ reply: result.reply }, 'reply');
    await marked;
    const generation = {
      reply: result.reply,
      model: result.model,
      usage: result.usage,
      completedAt: new Date().toISOString(),
    };
    await store.completeGeneration(task.taskId, key, generation);
    return handOver(task);
  };
}
