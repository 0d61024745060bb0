/**
 * The worker's outbound HTTP (LLM calls and callback deliveries) on a thread of its own, so the
 * event loop that accepts webhooks and runs the store and the queue does not also spend its time
 * in the `openai` SDK and in undici. The `LlmClient` and `CallbackSender` returned here keep the
 * in-process contracts: `complete` rejects with an `LlmError` only, `send` never rejects.
 *
 * Requests and replies cross in batches, one message per turn of either event loop. When the
 * thread dies, the calls it held end as retryable failures (a network error for the LLM, a
 * retry outcome for a callback), so their jobs run again, and the next call starts a new thread.
 */
import type { Worker } from 'node:worker_threads';
import type { CallbackSender, DeliveryOutcome } from '../delivery/send-callback.js';
import type { LlmClient, LlmCompletion } from '../llm/llm-client.js';
import { LlmError } from '../llm/llm-errors.js';
import { LLM_ERROR_TYPES } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { startThread } from '../shared/threads.js';
import type { Outbound, OutboundSettings } from './outbound-calls.js';
import {
  llmErrorFromData,
  type OutboundReply,
  type OutboundRequest,
  type OutboundThreadData,
} from './protocol.js';

export interface OutboundClientOptions {
  settings: OutboundSettings;
  logger: Logger;
}

type Pending =
  | { op: 'complete'; resolve: (value: LlmCompletion) => void; reject: (error: LlmError) => void }
  | { op: 'send'; resolve: (outcome: DeliveryOutcome) => void; startedAt: number };

/** The outbound calls on a thread of their own; `close` stops the thread. */
export function createOutboundClient(options: OutboundClientOptions): Outbound {
  const { logger } = options;
  const data: OutboundThreadData = { settings: options.settings };
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let thread: Worker | null = null;
  let outbox: OutboundRequest[] = [];
  let closed = false;
  let closePromise: Promise<void> | null = null;

  const settle = (message: OutboundReply): void => {
    const entry = pending.get(message.id);
    if (entry === undefined) return;
    pending.delete(message.id);
    if (message.op === 'send' && entry.op === 'send') entry.resolve(message.outcome);
    else if (message.op === 'complete' && entry.op === 'complete') {
      if (message.ok) entry.resolve(message.value);
      else entry.reject(llmErrorFromData(message.error));
    }
  };

  /** Ends every call the thread held: retryable, so each job runs again. */
  const failPending = (reason: string): void => {
    const now = performance.now();
    for (const [id, entry] of pending) {
      pending.delete(id);
      if (entry.op === 'complete') {
        entry.reject(new LlmError({ type: LLM_ERROR_TYPES.network, message: reason, retryable: true }));
      } else {
        entry.resolve({ type: 'retry', error: reason, durationMs: now - entry.startedAt });
      }
    }
  };

  const ensureThread = (): Worker => {
    if (thread !== null) return thread;
    const started = startThread(import.meta.url, './outbound-worker', { workerData: data });
    started.on('message', (batch: OutboundReply[]) => {
      for (const message of batch) settle(message);
    });
    started.on('error', (error) => {
      logger.error({ err: error }, 'outbound thread failed');
    });
    started.on('exit', (code) => {
      if (thread === started) thread = null;
      if (!closed) logger.error({ exit_code: code }, 'outbound thread stopped; its calls will be retried');
      failPending('The outbound thread stopped before answering');
    });
    // The HTTP server and the queue keep the process alive; this thread alone must not.
    started.unref();
    thread = started;
    return started;
  };

  const flush = (): void => {
    const batch = outbox;
    outbox = [];
    if (batch.length > 0) ensureThread().postMessage(batch);
  };
  const post = (message: OutboundRequest): void => {
    if (outbox.push(message) === 1) setImmediate(flush);
  };

  const llm: LlmClient = {
    complete(request, signal) {
      if (closed) {
        return Promise.reject(
          new LlmError({
            type: LLM_ERROR_TYPES.aborted,
            message: 'The worker is shutting down',
            retryable: true,
          }),
        );
      }
      if (signal?.aborted) {
        return Promise.reject(
          new LlmError({
            type: LLM_ERROR_TYPES.aborted,
            message: 'The LLM call was cancelled',
            retryable: true,
          }),
        );
      }
      const id = nextId++;
      return new Promise<LlmCompletion>((resolve, reject) => {
        pending.set(id, { op: 'complete', resolve, reject });
        post({
          op: 'complete',
          id,
          request,
          abortable: signal !== undefined,
        });
        signal?.addEventListener('abort', () => post({ op: 'abort', id }), { once: true });
      });
    },
  };

  const sender: CallbackSender = {
    send(url, body, headers) {
      if (closed) {
        return Promise.resolve({ type: 'retry', error: 'The worker is shutting down', durationMs: 0 });
      }
      const id = nextId++;
      return new Promise<DeliveryOutcome>((resolve) => {
        pending.set(id, { op: 'send', resolve, startedAt: performance.now() });
        post({ op: 'send', id, url, body, headers });
      });
    },
    close: (timeoutMs) => close(timeoutMs),
  };

  const close = (timeoutMs?: number): Promise<void> => {
    closePromise ??= (async () => {
      closed = true;
      flush();
      const running = thread;
      if (running === null) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.postMessage([{ op: 'close' }] satisfies OutboundRequest[]);
      if (timeoutMs === undefined) {
        await exited;
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      if ((await Promise.race([exited, timedOut])) === 'timeout') {
        logger.warn({ calls: pending.size }, 'outbound thread did not finish in time; stopping it');
        await running.terminate();
      }
      clearTimeout(timer);
    })();
    return closePromise;
  };

  return { llm, sender, close };
}
