/**
 * The only reader of `process.env`. Every variable of SPEC §7 is parsed here once, checked,
 * and returned as a frozen, typed object. A bad value becomes a `ConfigError` whose message is
 * one line per problem, naming the variable and the form it takes.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { invalidAllowedHosts } from './delivery/ssrf/allow-list.js';
import { ConfigError } from './shared/errors.js';
import { type Budget, type Prices, parseBudget, parsePrices } from './shared/llm-settings.js';
import type { LogLevel } from './shared/logger.js';
import { tracingFrom } from './tracing/tracing-config.js';

export type RateLimit = { max: number; windowMs: number; label: string } | null;
export type Role = 'all' | 'api' | 'worker';

export interface Config {
  host: string;
  port: number;
  /** Port of the worker role's operations server (`/healthz`, `/readyz`, `/metrics`); 0 = off. */
  workerPort: number;
  redisUrl: string | null;
  /** BullMQ key prefix; a `{hash tag}` keeps every key in one Redis Cluster slot. */
  queuePrefix: string;
  /**
   * Redis mode: how long a worker's claim on a running job lasts without renewal (renewed every
   * quarter of it; expired claims are looked for every half of it), so a dead worker's jobs are
   * taken over within 1.5 times this.
   */
  queueLockDurationMs: number;
  dataDir: string;
  /** Embedded mode: fsync every commit (`full`, survives power loss) or not (`normal`, survives any process crash). */
  sqliteSynchronous: 'normal' | 'full';
  /** Worker: LLM calls and callbacks run on a thread of their own (`OUTBOUND_THREAD`; `auto`: when the machine has two or more CPUs). */
  outboundThread: boolean;
  apiKey: string | null;
  llmBaseUrl: string;
  llmModel: string;
  llmFallbackModels: readonly string[];
  systemPrompt: string;
  llmTimeoutMs: number;
  llmRetryScheduleMs: readonly number[];
  historyMaxMessages: number;
  /** Most tokens of a prompt (system + history + message + the reply's `max_tokens`); 0 = no bound. */
  historyMaxTokens: number;
  historyTtlSeconds: number;
  /** Models a request's `options.model` may name besides `llmModel` and the fallbacks. */
  llmModelsAllowed: readonly string[];
  /** `LLM_PRICES`: the cost of a model that reports none. */
  llmPrices: Prices;
  /** `CLIENT_BUDGET`; `null`: none. */
  clientBudget: Budget | null;
  /** LLM calls in flight in the whole deployment; 0 = no limit. */
  llmMaxConcurrency: number;
  /** LLM requests per window, across the deployment; `null`: no limit. */
  llmRateLimit: RateLimit;
  /** LLM tokens (prompt estimate plus `max_tokens`) per window, across the deployment; `null`: no limit. */
  llmTokenRateLimit: RateLimit;
  workerConcurrency: number;
  /** Callback attempts run at once by one worker process, apart from its generations. */
  deliveryConcurrency: number;
  /**
   * Whether the run that stored a reply makes its callback's first attempt itself (README
   * *Delivery isolation*): `CALLBACK_FIRST_ATTEMPT=inline` (the default) or `queued`.
   */
  callbackFirstAttemptInline: boolean;
  rateLimit: RateLimit;
  trustProxy: boolean;
  apiTokens: readonly string[];
  webhookSecret: string | null;
  callbackTimeoutMs: number;
  callbackRetryScheduleMs: readonly number[];
  callbackAllowedHosts: readonly string[];
  callbackAllowPrivate: boolean;
  /** Callback attempts in flight at once per destination (origin), across all workers. */
  callbackMaxInFlightPerDestination: number;
  /** Longest wait a receiver's `Retry-After` (on 429 or 503) may ask for. */
  callbackRetryAfterMaxMs: number;
  /** The circuit breaker of each destination (SPEC §9; README *Delivery isolation*). */
  callbackBreaker: {
    failureRatio: number;
    /** 0: the breaker is off. */
    minAttempts: number;
    windowMs: number;
    cooldownMs: number;
    cooldownMaxMs: number;
  };
  bodyLimitBytes: number;
  messageMaxChars: number;
  taskRetentionSeconds: number;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  /**
   * OpenTelemetry tracing (SPEC §11): on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not true). The SDK
   * reads the other `OTEL_*` variables itself; they are only checked here.
   */
  tracing: boolean;
  /** Add `traceparent` to callbacks (`CALLBACK_TRACEPARENT`); off by default. */
  callbackTraceparent: boolean;
}

type Env = Record<string, string | undefined>;

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const RATE_WINDOWS_MS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000 };
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Parses `250ms`, `5s`, `5m`, `2h` into milliseconds; `null` when the text is not a duration. */
export function parseDurationMs(text: string): number | null {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  if (!match) return null;
  return Number(match[1]) * DURATION_UNITS_MS[match[2]!]!;
}

/** Parses a comma-separated schedule of durations; an empty text is an empty schedule. */
export function parseScheduleMs(text: string): number[] | null {
  if (text.trim() === '') return [];
  const parts = text.split(',').map(parseDurationMs);
  return parts.every((ms): ms is number => ms !== null) ? parts : null;
}

/** Parses `N/second|minute|hour` or `off`. */
export function parseRateLimit(text: string): RateLimit | undefined {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'off') return null;
  const match = /^(\d+)\s*\/\s*(second|minute|hour)$/.exec(trimmed);
  if (!match || Number(match[1]) < 1) return undefined;
  return {
    max: Number(match[1]),
    windowMs: RATE_WINDOWS_MS[match[2]!]!,
    label: `${match[1]} per 1 ${match[2]}`,
  };
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/**
 * Builds the configuration from `env` (default `process.env`, after loading `.env` from the
 * working directory when present). Throws a `ConfigError` listing every bad variable.
 */
export function loadConfig(env: Env = readProcessEnv()): Readonly<Config> {
  const problems: string[] = [];
  const text = (name: string, fallback: string): string => {
    const value = env[name];
    return value === undefined || value === '' ? fallback : value;
  };
  const integer = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = text(name, String(fallback)).trim();
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name}=${JSON.stringify(raw)} is invalid: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };
  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = text(name, String(fallback)).trim().toLowerCase();
    if (['true', '1', 'yes'].includes(raw)) return true;
    if (['false', '0', 'no'].includes(raw)) return false;
    problems.push(`${name}=${JSON.stringify(raw)} is invalid: expected true or false`);
    return fallback;
  };
  const schedule = (name: string, fallback: string): number[] => {
    const raw = text(name, fallback);
    const parsed = parseScheduleMs(raw);
    if (parsed === null) {
      problems.push(
        `${name}=${JSON.stringify(raw)} is invalid: expected comma-separated durations such as 250ms,5s,5m,2h`,
      );
      return parseScheduleMs(fallback) ?? [];
    }
    return parsed;
  };
  const duration = (name: string, fallback: string): number => {
    const raw = text(name, fallback).trim();
    const parsed = parseScheduleMs(raw);
    if (parsed?.length !== 1 || parsed[0]! < 1) {
      problems.push(
        `${name}=${JSON.stringify(raw)} is invalid: expected a duration such as 250ms, 30s, 5m or 2h`,
      );
      return parseScheduleMs(fallback)![0]!;
    }
    return parsed[0]!;
  };
  const ratio = (name: string, fallback: number): number => {
    const raw = text(name, String(fallback)).trim();
    const value = Number(raw);
    if (raw === '' || !Number.isFinite(value) || value <= 0 || value > 1) {
      problems.push(
        `${name}=${JSON.stringify(raw)} is invalid: expected a number above 0 and at most 1, such as 0.7`,
      );
      return fallback;
    }
    return value;
  };
  const url = (name: string, fallback: string | null, schemes: readonly string[]): string | null => {
    const raw = env[name] === undefined || env[name] === '' ? fallback : env[name]!.trim();
    if (raw === null) return null;
    try {
      const parsed = new URL(raw);
      if (schemes.includes(parsed.protocol.slice(0, -1))) return raw;
    } catch {
      // reported below
    }
    problems.push(`${name}=${JSON.stringify(raw)} is invalid: expected a ${schemes.join(' or ')} URL`);
    return fallback;
  };

  const rateLimitText = text('RATE_LIMIT', '5/minute');
  let rateLimit = parseRateLimit(rateLimitText);
  if (rateLimit === undefined) {
    problems.push(
      `RATE_LIMIT=${JSON.stringify(rateLimitText)} is invalid: expected N/second, N/minute, N/hour or off`,
    );
    rateLimit = parseRateLimit('5/minute')!;
  }

  const optionalRate = (name: string): RateLimit => {
    const raw = text(name, 'off');
    const parsed = parseRateLimit(raw);
    if (parsed === undefined) {
      problems.push(`${name}=${JSON.stringify(raw)} is invalid: expected N/second, N/minute, N/hour or off`);
      return null;
    }
    return parsed;
  };
  const pricesText = text('LLM_PRICES', '');
  const llmPrices = parsePrices(pricesText);
  if (llmPrices === null) {
    problems.push(
      `LLM_PRICES=${JSON.stringify(pricesText)} is invalid: expected comma-separated model=input/output USD per million tokens such as openai/gpt-4o=2.5/10`,
    );
  }
  const budgetText = text('CLIENT_BUDGET', '');
  const clientBudget = parseBudget(budgetText);
  if (clientBudget === undefined) {
    problems.push(
      `CLIENT_BUDGET=${JSON.stringify(budgetText)} is invalid: expected N tokens/day, N tokens/month, N usd/day, N usd/month or empty`,
    );
  }

  const webhookSecret = text('WEBHOOK_SECRET', '').trim() || null;
  if (webhookSecret !== null && !/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(webhookSecret)) {
    problems.push('WEBHOOK_SECRET is invalid: expected whsec_ followed by base64');
  }

  const logLevelText = text('LOG_LEVEL', 'info').trim().toLowerCase();
  if (!LOG_LEVELS.includes(logLevelText as LogLevel)) {
    problems.push(
      `LOG_LEVEL=${JSON.stringify(logLevelText)} is invalid: expected one of ${LOG_LEVELS.join(', ')}`,
    );
  }

  const sqliteSynchronous = text('SQLITE_SYNCHRONOUS', 'normal').trim().toLowerCase();
  if (sqliteSynchronous !== 'normal' && sqliteSynchronous !== 'full') {
    problems.push(
      `SQLITE_SYNCHRONOUS=${JSON.stringify(sqliteSynchronous)} is invalid: expected normal or full`,
    );
  }

  const redisUrl = url('REDIS_URL', null, ['redis', 'rediss']);
  const firstAttemptText = text('CALLBACK_FIRST_ATTEMPT', 'inline').trim().toLowerCase();
  if (!['inline', 'queued'].includes(firstAttemptText)) {
    problems.push(
      `CALLBACK_FIRST_ATTEMPT=${JSON.stringify(firstAttemptText)} is invalid: expected inline or queued`,
    );
  }

  const outboundThreadText = text('OUTBOUND_THREAD', 'auto').trim().toLowerCase();
  if (!['auto', 'on', 'off'].includes(outboundThreadText)) {
    problems.push(
      `OUTBOUND_THREAD=${JSON.stringify(outboundThreadText)} is invalid: expected auto, on or off`,
    );
  }

  const queuePrefix = text('QUEUE_PREFIX', '{llm-webhook}');
  if (!/^[\w{}:.-]+$/.test(queuePrefix)) {
    problems.push(
      `QUEUE_PREFIX=${JSON.stringify(queuePrefix)} is invalid: expected letters, digits and {}:._- such as {llm-webhook}`,
    );
  }

  const callbackAllowedHosts = list(text('CALLBACK_ALLOWED_HOSTS', ''));
  const badHosts = invalidAllowedHosts(callbackAllowedHosts);
  if (badHosts.length > 0) {
    problems.push(
      `CALLBACK_ALLOWED_HOSTS=${JSON.stringify(badHosts.join(','))} is invalid: expected comma-separated host names, IP addresses or CIDR ranges such as example.com,*.svc.local,203.0.113.0/24`,
    );
  }

  const config: Config = {
    host: text('HOST', '0.0.0.0').trim(),
    port: integer('PORT', 8000, 0, 65535),
    workerPort: integer('WORKER_PORT', 0, 0, 65535),
    redisUrl,
    queuePrefix,
    queueLockDurationMs: integer('QUEUE_LOCK_DURATION_MS', 5000, 1000, 3_600_000),
    dataDir: resolve(text('DATA_DIR', './data')),
    sqliteSynchronous: sqliteSynchronous === 'full' ? 'full' : 'normal',
    outboundThread: outboundThreadText === 'auto' ? availableParallelism() >= 2 : outboundThreadText === 'on',
    apiKey: (env.API_KEY || env.LLM_API_KEY || '').trim() || null,
    llmBaseUrl: url('LLM_BASE_URL', 'https://openrouter.ai/api/v1', ['http', 'https'])!,
    llmModel: text('LLM_MODEL', 'openai/gpt-3.5-turbo-1106').trim(),
    llmFallbackModels: list(text('LLM_FALLBACK_MODELS', '')),
    systemPrompt: text('SYSTEM_PROMPT', ''),
    llmTimeoutMs: integer('LLM_TIMEOUT_MS', 60_000, 1),
    llmRetryScheduleMs: schedule('LLM_RETRY_SCHEDULE', '1s,5s,30s'),
    historyMaxMessages: integer('HISTORY_MAX_MESSAGES', 20, 0),
    historyMaxTokens: integer('HISTORY_MAX_TOKENS', 12_000, 0),
    llmModelsAllowed: list(text('LLM_MODELS_ALLOWED', '')),
    llmPrices: llmPrices ?? new Map(),
    clientBudget: clientBudget ?? null,
    llmMaxConcurrency: integer('LLM_MAX_CONCURRENCY', 0, 0, 1_000_000),
    llmRateLimit: optionalRate('LLM_RATE_LIMIT'),
    llmTokenRateLimit: optionalRate('LLM_TOKEN_RATE_LIMIT'),
    historyTtlSeconds: integer('HISTORY_TTL_SECONDS', 604_800, 1),
    workerConcurrency: integer('WORKER_CONCURRENCY', 100, 1, 100_000),
    deliveryConcurrency: integer('DELIVERY_CONCURRENCY', 200, 1, 100_000),
    callbackFirstAttemptInline: firstAttemptText === 'inline',
    rateLimit,
    trustProxy: boolean('TRUST_PROXY', false),
    apiTokens: list(text('API_TOKENS', '')),
    webhookSecret,
    callbackTimeoutMs: integer('CALLBACK_TIMEOUT_MS', 10_000, 1),
    callbackRetryScheduleMs: schedule('CALLBACK_RETRY_SCHEDULE', '5s,5m,30m,2h,5h,10h,10h'),
    callbackAllowedHosts,
    callbackAllowPrivate: boolean('CALLBACK_ALLOW_PRIVATE', false),
    callbackMaxInFlightPerDestination: integer('CALLBACK_MAX_IN_FLIGHT_PER_DESTINATION', 50, 1, 100_000),
    callbackRetryAfterMaxMs: duration('CALLBACK_RETRY_AFTER_MAX', '1h'),
    callbackBreaker: {
      failureRatio: ratio('CALLBACK_BREAKER_FAILURE_RATIO', 0.7),
      minAttempts: integer('CALLBACK_BREAKER_MIN_ATTEMPTS', 10, 0, 1_000_000),
      windowMs: duration('CALLBACK_BREAKER_WINDOW', '5m'),
      cooldownMs: duration('CALLBACK_BREAKER_COOLDOWN', '30s'),
      cooldownMaxMs: duration('CALLBACK_BREAKER_COOLDOWN_MAX', '5m'),
    },
    bodyLimitBytes: integer('BODY_LIMIT_BYTES', 262_144, 1024, 100 * 1024 * 1024),
    messageMaxChars: integer('MESSAGE_MAX_CHARS', 32_000, 1),
    taskRetentionSeconds: integer('TASK_RETENTION_SECONDS', 604_800, 1),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0),
    logLevel: LOG_LEVELS.includes(logLevelText as LogLevel) ? (logLevelText as LogLevel) : 'info',
    tracing: tracingFrom(env, problems),
    callbackTraceparent: boolean('CALLBACK_TRACEPARENT', false),
  };

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

function readProcessEnv(): Env {
  const envFile = resolve('.env');
  // `.env` never overrides what the environment already holds.
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  return process.env;
}
