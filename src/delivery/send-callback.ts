/**
 * Sends one callback attempt (SPEC §5) and says what happened, never throwing. The one file that
 * imports `undici` for callbacks: one keep-alive `Agent` whose connections are all opened through
 * the SSRF guard's lookup, so every connection to a named host is checked against the address
 * it actually reaches. Redirects are not followed.
 */
import type { LookupFunction } from 'node:net';
import { Agent } from 'undici';
import { retryAfterToMs } from '../shared/retry-after.js';
import type { SsrfPolicy } from './ssrf/allow-list.js';
import { checkCallbackUrl } from './ssrf/callback-url.js';
import { type BaseLookup, CALLBACK_FORBIDDEN_CODE, createGuardedLookup } from './ssrf/guarded-lookup.js';

/** What one attempt came to: done, worth another attempt later, or never worth one. */
export type DeliveryOutcome =
  | { type: 'delivered'; statusCode: number; durationMs: number }
  | { type: 'retry'; statusCode?: number; error?: string; durationMs: number; retryAfterMs?: number }
  | { type: 'failed'; statusCode?: number; error: string; durationMs: number };

export interface CallbackSender {
  /** POSTs `body` (JSON) to `url` once; resolves with the outcome, never rejects. */
  send(url: string, body: string, headers: Record<string, string>): Promise<DeliveryOutcome>;
  /**
   * Lets in-flight attempts finish, for at most `timeoutMs` when given, then closes the
   * connection pool; attempts still running then are cut off (and end as retries).
   */
  close(timeoutMs?: number): Promise<void>;
}

export interface CallbackSenderOptions {
  /** Deadline for one attempt: connecting, the response headers and the (drained) body. */
  timeoutMs: number;
  policy: SsrfPolicy;
  userAgent: string;
  /** The resolver behind the guard; `dns.lookup` unless a test supplies its own answers. */
  lookup?: LookupFunction;
}

/** How much of a response body is read (and ignored) so the connection can be reused. */
const MAX_DRAINED_BYTES = 64 * 1024;

/** The error (or one of its causes) the SSRF guard refused the connection with, if any. */
function findForbidden(error: unknown): Error | null {
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0 && seen.size < 20) {
    const current = queue.shift();
    if (!(current instanceof Error) || seen.has(current)) continue;
    seen.add(current);
    if ((current as NodeJS.ErrnoException).code === CALLBACK_FORBIDDEN_CODE) return current;
    queue.push(current.cause);
    if (current instanceof AggregateError) queue.push(...current.errors);
  }
  return null;
}

/** A one-line description of a network error: its code and the most specific message in it. */
function describeError(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    const inner = current instanceof AggregateError ? current.errors[0] : current.cause;
    if (current.message !== '' || inner === undefined) {
      return code !== undefined && !current.message.includes(code)
        ? `${code}: ${current.message}`
        : current.message;
    }
    current = inner;
  }
  return String(current);
}

/** Adapts a `net` lookup to the all-addresses form the guard asks for. */
function asBaseLookup(lookup: LookupFunction): BaseLookup {
  return (hostname, lookupOptions, callback) => {
    lookup(hostname, lookupOptions, (error, address, family) => {
      if (error) callback(error, []);
      else if (typeof address === 'string') callback(null, [{ address, family: family ?? 4 }]);
      else callback(null, address);
    });
  };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function createCallbackSender(options: CallbackSenderOptions): CallbackSender {
  const { timeoutMs, policy, userAgent } = options;
  const agent = new Agent({
    connect: {
      timeout: timeoutMs,
      lookup: createGuardedLookup(
        policy,
        options.lookup === undefined ? undefined : asBaseLookup(options.lookup),
      ),
    },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });

  const send = async (
    target: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<DeliveryOutcome> => {
    const startedAt = performance.now();
    const elapsed = (): number => performance.now() - startedAt;

    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return { type: 'failed', error: 'The callback URL is not a valid URL', durationMs: elapsed() };
    }
    // Node connects to a literal address without calling `lookup`, so the guard's connect-time
    // check never sees it: literal addresses (and `localhost`) are refused here instead.
    const check = checkCallbackUrl(url, policy);
    if (!check.allowed) {
      return { type: 'failed', error: `Callback target forbidden: ${check.reason}`, durationMs: elapsed() };
    }

    const requestHeaders: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) requestHeaders[name.toLowerCase()] = value;
    requestHeaders['content-type'] = 'application/json';
    requestHeaders['user-agent'] = userAgent;

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      const response = await agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: requestHeaders,
        body,
        signal: controller.signal,
      });
      const { statusCode } = response;
      // The status decides the outcome; the body is read only so the connection can be reused,
      // bounded in size and by the same deadline, and any failure reading it is ignored.
      await response.body.dump({ limit: MAX_DRAINED_BYTES }).catch(() => undefined);
      const durationMs = elapsed();
      if (statusCode >= 200 && statusCode < 300) return { type: 'delivered', statusCode, durationMs };
      if (statusCode === 410) {
        return { type: 'failed', statusCode, error: 'The callback target answered 410 Gone', durationMs };
      }
      // A receiver asks for time only with 429 Too Many Requests and 503 Service Unavailable.
      const retryAfterMs =
        statusCode === 429 || statusCode === 503
          ? retryAfterToMs(header(response.headers['retry-after']))
          : null;
      return {
        type: 'retry',
        statusCode,
        ...(statusCode >= 300 && statusCode < 400
          ? { error: `HTTP ${statusCode}: redirects are not followed` }
          : {}),
        ...(retryAfterMs === null ? {} : { retryAfterMs }),
        durationMs,
      };
    } catch (error) {
      const durationMs = elapsed();
      const forbidden = findForbidden(error);
      if (forbidden !== null) return { type: 'failed', error: forbidden.message, durationMs };
      if (controller.signal.aborted) {
        return { type: 'retry', error: `The callback timed out after ${timeoutMs} ms`, durationMs };
      }
      return { type: 'retry', error: describeError(error), durationMs };
    } finally {
      clearTimeout(timer);
    }
  };

  const close = async (timeoutMs?: number): Promise<void> => {
    const closed = agent.close();
    if (timeoutMs === undefined) return closed;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      if ((await Promise.race([closed, timedOut])) === 'timeout') await agent.destroy();
    } finally {
      clearTimeout(timer);
    }
  };

  return { send, close };
}
