/**
 * Every stable code of the service, in one place: the `code` of each error class, the types an
 * LLM call fails with, and the types a task's `error` can carry (in task records, callbacks and
 * the `reason` label of `llm_webhook_tasks_failed_total`). Whether a job is retried follows from
 * the class: a `PermanentJobError` is never retried, anything else thrown by a job handler is.
 */

/** The `code` of each error class (an `HttpError` without one of these is `HTTP_<status>`). */
export const ERROR_CODES = {
  configInvalid: 'CONFIG_INVALID',
  validationFailed: 'VALIDATION_FAILED',
  jobPermanent: 'JOB_PERMANENT',
  backendUnavailable: 'BACKEND_UNAVAILABLE',
  callbackForbidden: 'ERR_CALLBACK_FORBIDDEN',
  idempotencyKeyInvalid: 'IDEMPOTENCY_KEY_INVALID',
  idempotencyConflict: 'IDEMPOTENCY_CONFLICT',
  rateLimited: 'RATE_LIMITED',
  taskNotFound: 'TASK_NOT_FOUND',
  taskNotFinished: 'TASK_NOT_FINISHED',
  destinationNotFound: 'DESTINATION_NOT_FOUND',
} as const;

/** The types an LLM call fails with (its `LlmError`'s `type`; the `code` is the same in upper case). */
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
  /** Anything else the client failed with (a bug rather than an answer). */
  unexpected: 'llm_error',
  /** No `API_KEY` is configured. */
  missingApiKey: 'config_missing_api_key',
} as const;

export type LlmErrorType = (typeof LLM_ERROR_TYPES)[keyof typeof LLM_ERROR_TYPES];

/** The types of a task's `error`: how its LLM call failed, or that its callback was not delivered. */
export const TASK_ERROR_TYPES = {
  ...LLM_ERROR_TYPES,
  callbackFailed: 'callback_failed',
  destinationUnavailable: 'destination_unavailable',
} as const;

export type TaskErrorType = (typeof TASK_ERROR_TYPES)[keyof typeof TASK_ERROR_TYPES];

export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Thrown by a job handler to end the job now, with no further retry. */
export class PermanentJobError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.jobPermanent, message, options);
  }
}

/** The queue or store backend cannot be reached (answered as HTTP 503). */
export class BackendUnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.backendUnavailable, message, options);
  }
}

/** An HTTP-facing error with its status code and a `detail` for the JSON body. */
export class HttpError extends AppError {
  constructor(
    readonly statusCode: number,
    readonly detail: string,
    code = `HTTP_${statusCode}`,
  ) {
    super(code, detail);
  }
}

/** A bad configuration: one line per problem, naming the variable and the form it takes. */
export class ConfigError extends AppError {
  constructor(readonly problems: readonly string[]) {
    super(ERROR_CODES.configInvalid, problems.join('\n'));
  }
}
