/**
 * The errors an LLM call ends with. `type` is stable (it reaches task records and callbacks);
 * `retryable` decides whether the caller runs its retry schedule (SPEC §4: network errors,
 * timeouts, 408, 429 and 5xx are retried; any other 4xx is permanent).
 */
import { AppError } from '../shared/errors.js';

/** The stable error types, in one place. */
export const LLM_ERROR_TYPES = {
  /** 401 or 403: the key is wrong or lacks access. */
  auth: 'llm_auth',
  /** Any other 4xx: the request itself is refused (unknown model, too long a prompt, ...). */
  badRequest: 'llm_bad_request',
  /** 429. */
  rateLimited: 'llm_rate_limited',
  /** 5xx or 408. */
  unavailable: 'llm_unavailable',
  /** No answer within the timeout. */
  timeout: 'llm_timeout',
  /** The connection failed or broke. */
  network: 'llm_network',
  /** The call was cancelled through its `AbortSignal`. */
  aborted: 'llm_aborted',
  /** A 2xx answer with no usable reply (no choices, empty content, not JSON). */
  badResponse: 'llm_bad_response',
  /** No `API_KEY` is configured. */
  missingApiKey: 'config_missing_api_key',
} as const;

export type LlmErrorType = (typeof LLM_ERROR_TYPES)[keyof typeof LLM_ERROR_TYPES];

export interface LlmErrorOptions {
  type: string;
  message: string;
  retryable: boolean;
  /** The HTTP status the LLM answered with, when it answered. */
  status?: number;
  /** How long the LLM asked the caller to wait (`Retry-After`, `retry-after-ms`). */
  retryAfterMs?: number;
  cause?: unknown;
}

/** A failed LLM call. Its `code` is its `type` in upper case (`LLM_AUTH`, ...). */
export class LlmError extends AppError {
  readonly type: string;
  readonly retryable: boolean;
  readonly status?: number;
  readonly retryAfterMs?: number;

  constructor(options: LlmErrorOptions) {
    super(options.type.toUpperCase(), options.message, { cause: options.cause });
    this.type = options.type;
    this.retryable = options.retryable;
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }
}

/** The error type and retry decision for an HTTP status the LLM answered with. */
export function classifyLlmStatus(status: number): { type: LlmErrorType; retryable: boolean } {
  if (status === 401 || status === 403) return { type: LLM_ERROR_TYPES.auth, retryable: false };
  if (status === 429) return { type: LLM_ERROR_TYPES.rateLimited, retryable: true };
  if (status === 408 || status >= 500) return { type: LLM_ERROR_TYPES.unavailable, retryable: true };
  if (status >= 400) return { type: LLM_ERROR_TYPES.badRequest, retryable: false };
  return { type: LLM_ERROR_TYPES.badResponse, retryable: true };
}
