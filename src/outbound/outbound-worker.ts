/**
 * The outbound thread's entry point: the LLM client and callback sender of
 * `createOutboundCalls`, driven by batches of requests from the worker's event loop
 * (`outbound-client.ts`). Replies go back in batches too, one message per turn of this thread's
 * event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LlmError } from '../llm/llm-errors.js';
import { LLM_ERROR_TYPES } from '../shared/errors.js';
import { createOutboundCalls } from './outbound-calls.js';
import {
  llmErrorToData,
  type OutboundReply,
  type OutboundRequest,
  type OutboundThreadData,
} from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('outbound-worker.ts runs as a worker thread only');

const { settings } = workerData as OutboundThreadData;
const { llm, sender, close } = createOutboundCalls(settings);

let outbox: OutboundReply[] = [];
const flush = (): void => {
  const batch = outbox;
  outbox = [];
  port.postMessage(batch);
};
const reply = (message: OutboundReply): void => {
  if (outbox.push(message) === 1) setImmediate(flush);
};

const aborts = new Map<number, AbortController>();

const complete = async (request: Extract<OutboundRequest, { op: 'complete' }>): Promise<void> => {
  let controller: AbortController | undefined;
  if (request.abortable) {
    controller = new AbortController();
    aborts.set(request.id, controller);
  }
  try {
    const value = await llm.complete(request.request, controller?.signal);
    reply({ op: 'complete', id: request.id, ok: true, value });
  } catch (error) {
    const llmError =
      error instanceof LlmError
        ? error
        : new LlmError({ type: LLM_ERROR_TYPES.badResponse, message: String(error), retryable: true });
    reply({ op: 'complete', id: request.id, ok: false, error: llmErrorToData(llmError) });
  } finally {
    if (controller !== undefined) aborts.delete(request.id);
  }
};

let closing = false;

port.on('message', (batch: OutboundRequest[]) => {
  for (const request of batch) {
    switch (request.op) {
      case 'complete':
        void complete(request);
        break;
      case 'abort':
        aborts.get(request.id)?.abort();
        break;
      case 'send':
        void sender.send(request.url, request.body, request.headers).then((outcome) => {
          reply({ op: 'send', id: request.id, outcome });
        });
        break;
      case 'close':
        if (closing) break;
        closing = true;
        // Calls in flight finish and are answered; then the pools close and the thread ends.
        void close().finally(() => {
          if (outbox.length > 0) flush();
          port.close();
        });
        break;
    }
  }
});
