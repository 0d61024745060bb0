/**
 * The one pino logger. Secrets are redacted by path at every level; callers must never put a
 * secret in a message string. Message texts belong at `debug` only. With tracing on, every line
 * written while a span is active carries its `trace_id` and `span_id`.
 */
import { trace } from '@opentelemetry/api';
import { type DestinationStream, type Logger, pino } from 'pino';
export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  'apiKey',
  'config.apiKey',
  'config.apiTokens',
  'config.webhookSecret',
  'token',
  'secret',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'request.headers.authorization',
  'res.headers["set-cookie"]',
  'headers["webhook-signature"]',
];

export interface LoggerOptions {
  /** Add `trace_id` and `span_id` of the active span to each line (tracing on). */
  traceIds?: boolean;
}

/** The ids of the span active now, for a log line; none when no span is. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

export function createLogger(
  level: LogLevel,
  destination?: DestinationStream,
  options: LoggerOptions = {},
): Logger {
  return pino(
    {
      level,
      // Off unless tracing is on: with no SDK there is never an active span to look up.
      ...(options.traceIds === true ? { mixin: activeTraceIds } : {}),
      base: { service: 'llm-webhook' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
