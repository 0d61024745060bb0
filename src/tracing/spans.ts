/**
 * What the call sites use to make spans: the service's tracer, a span around a piece of async
 * work, W3C trace context in and out of a carrier, and URLs safe to put in an attribute. Only
 * `@opentelemetry/api`, which is a no-op until an SDK registers a tracer provider: with tracing
 * off (`start-tracing.ts` never loaded) these calls record nothing.
 */
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  type SpanOptions,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { VERSION } from '../shared/version.js';

/** The instrumentation scope of every span this service makes by hand. */
export const TRACER_NAME = 'llm-webhook';

/** W3C trace context (`traceparent`, `tracestate`) as text, stored with a job or sent as headers. */
export type TraceCarrier = Record<string, string>;

/** Attributes of our own, beside the semantic conventions (all under one namespace). */
export const ATTR = {
  taskId: 'llm_webhook.task.id',
  jobAttempt: 'llm_webhook.job.attempt',
  jobOutcome: 'llm_webhook.job.outcome',
  retryDelayMs: 'llm_webhook.job.retry_delay_ms',
  llmAttempt: 'llm_webhook.llm.attempt',
  callbackAttempt: 'llm_webhook.callback.attempt',
  callbackDestination: 'llm_webhook.callback.destination',
  callbackOutcome: 'llm_webhook.callback.outcome',
  callbackDurationMs: 'llm_webhook.callback.duration_ms',
  callbackProbe: 'llm_webhook.callback.probe',
} as const;

export function tracer() {
  return trace.getTracer(TRACER_NAME, VERSION);
}

/**
 * Runs `work` inside a new span (active while it runs, so log lines and child spans see it), and
 * ends the span when it settles; a rejection marks the span as an error and is rethrown.
 */
export async function withSpan<T>(
  name: string,
  options: SpanOptions & { kind: SpanKind },
  work: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  const span = tracer().startSpan(name, options, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (error) {
    markFailed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** Marks a span as failed, with the error's type (its stable `type` or `code` when it has one). */
export function markFailed(span: Span, error: unknown, errorType = errorTypeOf(error)): void {
  span.setAttribute('error.type', errorType);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    ...(error instanceof Error ? { message: error.message } : {}),
  });
}

function errorTypeOf(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const { type, code } = error as { type?: unknown; code?: unknown };
    if (typeof type === 'string') return type;
    if (typeof code === 'string') return code;
    if (error instanceof Error) return error.name;
  }
  return '_OTHER';
}

/** The trace context of `from` (default: the active one) as a carrier; `undefined` when there is none. */
export function injectCarrier(from: Context = context.active()): TraceCarrier | undefined {
  const carrier: TraceCarrier = {};
  propagation.inject(from, carrier);
  return Object.keys(carrier).length === 0 ? undefined : carrier;
}

/** The context a carrier describes (as a remote parent), or the root context without one. */
export function extractCarrier(carrier: Readonly<TraceCarrier> | null | undefined): Context {
  return carrier == null ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, carrier);
}

/**
 * A URL as it may appear in an attribute: no query string, no fragment and no credentials, any
 * of which may carry a secret (a token in `?key=`, `user:password@`). `null` when not a URL.
 */
export function urlForAttribute(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  return url.href;
}

/**
 * Adds an event to the active span (a job run waiting for its destination, say); nothing when no
 * span is active, as with tracing off.
 */
export function traceEvent(name: string, attributes: Attributes): void {
  trace.getActiveSpan()?.addEvent(name, attributes);
}

/** Sets the attributes whose value is defined. */
export function setDefined(span: Span, attributes: Record<string, Attributes[string] | null>): void {
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) span.setAttribute(key, value);
  }
}
