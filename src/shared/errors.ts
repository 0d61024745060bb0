/**
 * Error classes with a stable `code`. Whether a job is retried follows from the class: a
 * `PermanentJobError` is never retried, anything else thrown by a job handler is.
 */
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
    super('JOB_PERMANENT', message, options);
  }
}

/** The queue or store backend cannot be reached (answered as HTTP 503). */
export class BackendUnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', message, options);
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
