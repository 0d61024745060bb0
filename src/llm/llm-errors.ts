/**
 * The errors an LLM call ends with. `type` is stable (it reaches task records and callbacks);
 * `retryable` decides whether the caller runs its retry schedule (SPEC §4: network errors,
 * timeouts, 408, 429 and 5xx are retried; any other 4xx is permanent).
 */
import { AppError, LLM_ERROR_TYPES, type LlmErrorType } from '../shared/errors.js';

export interface LlmErrorOptions {
  type: LlmErrorType;
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
  readonly type: LlmErrorType;
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
