/**
 * The `generate` job (SPEC §4): load the conversation's history, ask the LLM, store the exchange,
 * and deliver the outcome. The run hands its generation slot back (`Job.yieldSlot`) and makes the
 * callback's first attempt itself when the destination is healthy and the conversation has no
 * earlier delivery queued (`deliver` below); otherwise, or for the retries after that attempt, it
 * queues a `deliver` job in the conversation's group of the delivery queue (catalog.ts). The job
 * ends only once the delivery ended or is queued, so a crash before then runs it again. Every step
 * is safe to run again: a task whose generation already ended only makes sure its delivery is
 * queued (or does nothing when its delivery ended too).
 *
 * The conversation's next message waits for this job: for its LLM call, and for at most one
 * callback attempt to a healthy receiver, never for a retry or a held receiver.
 *
 * The LLM retry schedule and the fallback models are derived from the LLM calls the task has made
 * (`attempts.llm`), so nothing else about them needs storing: with a schedule of n delays, calls
 * 1..n+1 use the first model (the request's `options.model`, or LLM_MODEL), the next n+1 the
 * first fallback, and so on. Retries, and waits for a pause or a provider limit (llm-gate.ts),
 * go back through the queue, which keeps the conversation's later messages waiting behind this one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import type { LlmClient, LlmCompletion } from '../llm/llm-client.js';
import { LlmError } from '../llm/llm-errors.js';
import type { Job, JobQueue, JobResult } from '../queue/job-queue.js';
import { LLM_ERROR_TYPES } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Metrics } from '../shared/metrics.js';
import {
  conversationKey,
  type HistoryMessage,
  type Store,
  type TaskError,
  type TaskRecord,
  type Usage,
} from '../store/store.js';
import { createChatTracer } from '../tracing/llm-span.js';
import { traceEvent } from '../tracing/spans.js';
import { deliveryJob } from './catalog.js';
import type { FirstDelivery, FirstDeliveryRun } from './deliver-callback.js';
import type { GateResult, LlmGate } from './llm-gate.js';
import { buildPrompt, halveHistory } from './prompt.js';
import { withCost } from './usage-cost.js';

export interface GenerateReplyDeps {
  config: Readonly<Config>;
  logger: Logger;
  store: Store;
  /** The delivery queue, where the outcome's delivery is queued. */
  deliveries: JobQueue;
  llm: LlmClient;
  metrics: Metrics;
  llmGate: LlmGate;
  /** Makes a delivery's first attempt at once (`Deliverer.first`); without it, every delivery is queued. */
  firstDelivery?: (task: TaskRecord, run: FirstDeliveryRun) => Promise<FirstDelivery>;
}

/**
 * While an earlier delivery of the conversation is queued, the pauses between looks at it before
 * the delivery is queued behind it (155 ms in all).
 */
const PENDING_LOOKS_MS = [5, 10, 20, 40, 80];

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

/**
 * When to look again after a model's pause: its end, spread over up to a tenth of it (at most a
 * second), so the calls held back do not all reach the provider in the same instant.
 */
function afterPause(pausedMs: number): number {
  return pausedMs + Math.floor(Math.random() * Math.min(1000, pausedMs / 10));
}

/** Adds a completed task's tokens and cost to the Prometheus counters. */
function countUsage(metrics: Metrics, model: string, usage: Usage | null): void {
  if (usage === null) return;
  metrics.llmTokens.inc({ model, kind: 'prompt' }, usage.prompt_tokens);
  metrics.llmTokens.inc({ model, kind: 'completion' }, usage.completion_tokens);
  if (usage.cached_tokens) metrics.llmTokens.inc({ model, kind: 'cached' }, usage.cached_tokens);
  if (usage.reasoning_tokens) metrics.llmTokens.inc({ model, kind: 'reasoning' }, usage.reasoning_tokens);
  if (usage.cost !== undefined) metrics.llmCost.inc({ model }, usage.cost);
}

export function createGenerateReply(deps: GenerateReplyDeps): (job: Job) => Promise<JobResult> {
  const { config, store, deliveries, llm, metrics, llmGate } = deps;
  const defaultModels = [config.llmModel, ...config.llmFallbackModels];
  /** The models a task tries in turn: the one it asked for, then the fallbacks (SPEC §10). */
  const modelsFor = (chosen: string | undefined): string[] =>
    chosen === undefined || chosen === config.llmModel
      ? defaultModels
      : [chosen, ...config.llmFallbackModels.filter((model) => model !== chosen)];
  const traceChat = createChatTracer(config.llmBaseUrl, config.tracing);

  /** Queues the task's delivery (a no-op when it is queued already); the job is done. */
  const handOver = async (task: TaskRecord, delayMs = 0): Promise<JobResult> => {
    await deliveries.enqueue({
      ...deliveryJob(task.taskId, conversationKey(task.namespace, task.conversationId)),
      ...(delayMs > 0 ? { delayMs } : {}),
    });
    return { type: 'done' };
  };

  /**
   * Delivers the outcome just stored (`ended`: the task as it is now): its first attempt at once,
   * in this run, when no earlier delivery of the conversation is still queued (so callbacks keep
   * their order) and the destination is healthy (`Deliverer.first`); the run gives its
   * generation slot back first, so a slow receiver never takes a generation's place. Otherwise,
   * or for what comes after a failed attempt, the delivery job is queued.
   */
  const deliver = async (job: Job, ended: TaskRecord): Promise<JobResult> => {
    const { firstDelivery } = deps;
    if (firstDelivery === undefined) return handOver(ended);
    const group = conversationKey(ended.namespace, ended.conversationId);
    const behindQueued = async (): Promise<boolean> => {
      // The conversation's earlier delivery, queued, often ends within moments: look a few
      // times, with the generation slot handed back meanwhile.
      for (const pauseMs of [...PENDING_LOOKS_MS, null]) {
        if (!(await deliveries.groupPending(group))) return false;
        if (pauseMs === null) break;
        job.yieldSlot();
        await sleep(pauseMs);
      }
      return true;
    };
    const first = await firstDelivery(ended, { behindQueued, yieldSlot: () => job.yieldSlot() });
    return first.type === 'ended' ? { type: 'done' } : handOver(ended, first.delayMs);
  };

  const fail = async (job: Job, task: TaskRecord, error: TaskError, log: Logger): Promise<JobResult> => {
    log.warn({ err_type: error.type }, `task failed: ${error.message}`);
    const completedAt = new Date().toISOString();
    if (!(await store.failGeneration(task.taskId, error, completedAt))) return handOver(task);
    return deliver(job, { ...task, status: 'delivering', error, completedAt });
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

    const options = task.options ?? {};
    const models = modelsFor(options.model);
    // The plan follows the LLM calls made, not the job's runs: a run that waited for a pause or a
    // limit made no call and spends no retry.
    const plan = planAttempt(task.attempts.llm + 1, models, config.llmRetryScheduleMs);
    if (plan === null) {
      return fail(job, task, { type: 'llm_unavailable', message: 'LLM retries spent' }, log);
    }

    const key = conversationKey(task.namespace, task.conversationId);
    const paused = llmGate.pausedMs(plan.model);
    // Only so a rejection while the history is read is not reported as unhandled: awaited below.
    paused.catch(() => {});
    const history = await store.getHistory(key, config.historyMaxMessages);
    const promptFor = (entries: readonly HistoryMessage[]) =>
      buildPrompt({
        systemPrompt: config.systemPrompt,
        history: entries,
        message: task.message,
        model: plan.model,
        maxTokens: options.max_tokens,
        budgetTokens: config.historyMaxTokens,
      });
    let prompt = await promptFor(history);

    const pausedMs = await paused;
    const gate: GateResult =
      pausedMs > 0
        ? { type: 'wait', delayMs: afterPause(pausedMs), reason: 'paused' }
        : await llmGate.enter(plan.model, prompt.tokens + (options.max_tokens ?? 0));
    if (gate.type === 'wait') {
      metrics.llmWaits.inc({ reason: gate.reason });
      log.debug({ model: plan.model, reason: gate.reason, delay_ms: gate.delayMs }, 'LLM call put off');
      traceEvent('llm.wait', {
        'gen_ai.request.model': plan.model,
        reason: gate.reason,
        wait_ms: gate.delayMs,
      });
      return { type: 'retry', delayMs: gate.delayMs };
    }

    /** How long the call that answered took (the latency roll-up). */
    let answeredInMs = 0;
    /** One call with `prompt`, counted on the task; the outcome, or the `LlmError` it failed with. */
    const call = async (): Promise<LlmCompletion | LlmError> => {
      metrics.historyMessages.observe(prompt.kept.length);
      if (prompt.dropped > 0) metrics.historyDropped.inc(prompt.dropped);
      // Written while the LLM works (counting the call, and `queued` becomes `processing`); awaited
      // before the outcome is stored, so it lands first and a failed write still fails the job.
      const marked = store.recordLlmAttempt(task.taskId);
      // Only so an early rejection is not reported as unhandled: `marked` is awaited below.
      marked.catch(() => {});
      log.info({ model: plan.model, history: prompt.kept.length, dropped: prompt.dropped }, 'calling LLM');
      log.debug({ message: task.message }, 'prompt');
      const startedAt = performance.now();
      try {
        const request = {
          model: plan.model,
          messages: prompt.messages,
          ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
          ...(options.max_tokens === undefined ? {} : { max_tokens: options.max_tokens }),
        };
        const completion = await traceChat(
          {
            model: plan.model,
            conversationId: task.conversationId,
            attempt: job.attempt,
            ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
            ...(options.max_tokens === undefined ? {} : { maxTokens: options.max_tokens }),
          },
          () => llm.complete(request),
        );
        answeredInMs = performance.now() - startedAt;
        metrics.llmCallDuration.observe({ model: plan.model, outcome: 'success' }, answeredInMs / 1000);
        await marked;
        return completion;
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
        return llmError;
      }
    };

    let result: LlmCompletion | LlmError;
    try {
      result = await call();
      // Too long for the model after all (its window is smaller than HISTORY_MAX_TOKENS, or the
      // count was an estimate): once more with half the history.
      if (
        result instanceof LlmError &&
        result.type === LLM_ERROR_TYPES.contextLength &&
        prompt.kept.length > 0
      ) {
        log.warn(
          { model: plan.model, history: prompt.kept.length },
          'prompt too long; retrying with half the history',
        );
        prompt = await promptFor(halveHistory(prompt.kept));
        result = await call();
      }
    } finally {
      await gate.release();
    }

    if (result instanceof LlmError) {
      const llmError = result;
      if (llmError.status === 429 && llmError.retryAfterMs !== undefined && llmError.retryAfterMs > 0) {
        // Every worker holds off this model for as long as the provider asked.
        await llmGate.pause(plan.model, llmError.retryAfterMs);
      }
      if (llmError.retryable && plan.retryDelayMs !== null) {
        const delayMs = Math.max(plan.retryDelayMs, llmError.retryAfterMs ?? 0);
        log.warn(
          { err_type: llmError.type, status: llmError.status, delay_ms: delayMs },
          'LLM call failed; retrying',
        );
        return { type: 'retry', delayMs };
      }
      return fail(job, task, { type: llmError.type, message: llmError.message }, log);
    }
    log.info({ model: result.model }, 'LLM replied');
    log.debug({ reply: result.reply }, 'reply');
    const generation = {
      reply: result.reply,
      model: result.model,
      usage: withCost(result.usage, [result.model, plan.model], config.llmPrices),
      completedAt: new Date().toISOString(),
      namespace: task.namespace,
      conversationId: task.conversationId,
      client: task.client,
      llmDurationMs: answeredInMs,
    };
    // Counted once: a run again after a crash finds the generation ended and stores nothing.
    if (!(await store.completeGeneration(task.taskId, key, generation))) return handOver(task);
    countUsage(metrics, generation.model, generation.usage);
    return deliver(job, {
      ...task,
      status: 'delivering',
      generatedResponse: generation.reply,
      model: generation.model,
      usage: generation.usage,
      completedAt: generation.completedAt,
    });
  };
}
