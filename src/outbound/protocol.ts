/**
 * The messages between the worker's event loop and its outbound thread (`outbound-worker.ts`).
 * Everything crossing is plain data (structured clone): an `LlmError` travels as its fields and
 * is rebuilt on arrival, so `generate-reply.ts` sees the same error either way.
 */
import type { DeliveryOutcome } from '../delivery/send-callback.js';
import type { LlmCompletion, LlmRequest } from '../llm/llm-client.js';
import { LlmError } from '../llm/llm-errors.js';
import type { LlmErrorType } from '../shared/errors.js';
import type { OutboundSettings } from './outbound-calls.js';

/** What the thread is started with. */
export interface OutboundThreadData {
  settings: OutboundSettings;
}

export type OutboundRequest =
  | { op: 'complete'; id: number; request: LlmRequest; abortable: boolean }
  | { op: 'abort'; id: number }
  | { op: 'send'; id: number; url: string; body: string; headers: Record<string, string> }
  | { op: 'close' };

/** An `LlmError` as data. */
export interface LlmErrorData {
  type: LlmErrorType;
  message: string;
  retryable: boolean;
  status?: number;
  retryAfterMs?: number;
}

export type OutboundReply =
  | { op: 'complete'; id: number; ok: true; value: LlmCompletion }
  | { op: 'complete'; id: number; ok: false; error: LlmErrorData }
  | { op: 'send'; id: number; outcome: DeliveryOutcome };

export function llmErrorToData(error: LlmError): LlmErrorData {
  return {
    type: error.type,
    message: error.message,
    retryable: error.retryable,
    ...(error.status === undefined ? {} : { status: error.status }),
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
  };
}

export function llmErrorFromData(data: LlmErrorData): LlmError {
  return new LlmError(data);
}
