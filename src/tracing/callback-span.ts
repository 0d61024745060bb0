/**
 * The span of one callback attempt, `POST callback` (an HTTP client span), made by hand around
 * the sender rather than by undici's instrumentation: that one adds `traceparent` to every
 * request it sees, with no opt-out, and SPEC §11 sends trace ids to a receiver only when
 * `CALLBACK_TRACEPARENT=true`. The URL loses its query string (it may carry a secret).
 */
import { type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { ATTR, injectCarrier, setDefined, type TraceCarrier, urlForAttribute, withSpan } from './spans.js';

/** What the sender said of the attempt (the fields of a `DeliveryOutcome` that the span shows). */
export interface CallbackSpanOutcome {
  type: 'delivered' | 'retry' | 'failed';
  statusCode?: number;
  error?: string;
  durationMs: number;
}

export interface CallbackSpanRequest {
  url: string;
  /** 1-based attempt number, as the retry schedule counts. */
  attempt: number;
  /** Whether the receiver is sent `traceparent` (`CALLBACK_TRACEPARENT`). */
  propagate: boolean;
  /** The attempt is the probe of a half-open circuit breaker. */
  probe?: boolean;
}

/** The destination of SPEC §9: scheme, host and port. */
function destinationOf(url: URL): string {
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  return `${url.protocol}//${url.hostname}:${port}`;
}

/** The target's attributes; none for a URL that does not parse (the attempt fails on it). */
function setDestination(span: Span, text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return;
  }
  const destination = destinationOf(url);
  setDefined(span, {
    'url.full': urlForAttribute(url.href),
    'server.address': url.hostname,
    'server.port': Number(destination.slice(destination.lastIndexOf(':') + 1)),
    [ATTR.callbackDestination]: destination,
  });
}

export type TraceCallbackAttempt = typeof traceCallbackAttempt;

const NO_TRACE_HEADERS: TraceCarrier = Object.freeze({}) as TraceCarrier;

/** `traceCallbackAttempt`, or with tracing off (`enabled` false) the attempt alone, no span call at all. */
export function createCallbackTracer(enabled: boolean): TraceCallbackAttempt {
  return enabled ? traceCallbackAttempt : (_request, send) => send(NO_TRACE_HEADERS);
}

/**
 * Makes one attempt inside its span. `send` gets the trace headers to add (none unless
 * `propagate`), and resolves with the sender's outcome, which never rejects.
 */
export function traceCallbackAttempt<T extends CallbackSpanOutcome>(
  request: CallbackSpanRequest,
  send: (traceHeaders: TraceCarrier) => Promise<T>,
): Promise<T> {
  return withSpan(
    'POST callback',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'http.request.method': 'POST',
        [ATTR.callbackAttempt]: request.attempt,
        ...(request.probe === true ? { [ATTR.callbackProbe]: true } : {}),
      },
    },
    async (span) => {
      if (span.isRecording()) setDestination(span, request.url);
      const outcome = await send(request.propagate ? (injectCarrier() ?? {}) : {});
      setDefined(span, {
        'http.response.status_code': outcome.statusCode,
        [ATTR.callbackOutcome]: outcome.type,
        [ATTR.callbackDurationMs]: Math.round(outcome.durationMs),
      });
      if (outcome.type !== 'delivered') {
        // The semantic conventions' `error.type`: the status code when there is one.
        span.setAttribute(
          'error.type',
          outcome.statusCode === undefined ? 'network' : String(outcome.statusCode),
        );
        span.setStatus({
          code: SpanStatusCode.ERROR,
          ...(outcome.error === undefined ? {} : { message: outcome.error }),
        });
      }
      return outcome;
    },
  );
}
