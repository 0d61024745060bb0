/**
 * The one pino logger. Secrets are redacted by path at every level; callers must never put a
 * secret in a message string. Message texts belong at `debug` only.
 */
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

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'llm-webhook' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
