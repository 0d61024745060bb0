/**
 * The deadline on backend calls made while answering a request: one call (`withBackendDeadline`)
 * or every call of one request (`createBackendBudget`). A backend that does not answer in time
 * is a `BackendUnavailableError`, which the error handler answers 503.
 */
import { BackendUnavailableError } from '../shared/errors.js';

/** The deadline for any single store or queue call made while answering a request. */
export const BACKEND_TIMEOUT_MS = 2000;

/**
 * Settles like `promise`, or rejects with `BackendUnavailableError` after `timeoutMs`: a backend
 * that stops answering (a Redis that is reconnecting queues commands forever) must become a
 * prompt 503, never a request that hangs.
 */
export async function withBackendDeadline<T>(
  promise: Promise<T>,
  timeoutMs = BACKEND_TIMEOUT_MS,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BackendUnavailableError(`Backend did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One time budget for every backend call made while answering one request: however many calls
 * a route makes, the answer (a 503 at worst) comes within `totalMs`.
 */
export function createBackendBudget(totalMs = BACKEND_TIMEOUT_MS): <T>(promise: Promise<T>) => Promise<T> {
  const endsAt = Date.now() + totalMs;
  return (promise) => withBackendDeadline(promise, Math.max(1, endsAt - Date.now()));
}
