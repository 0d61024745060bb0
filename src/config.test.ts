import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseDurationMs, parseRateLimit, parseScheduleMs } from './config.js';
import { ConfigError } from './shared/errors.js';

const readmeTableVariables = (): string[] => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  return [...section.matchAll(/^\| `([A-Z_]+)`/gm)].map((match) => match[1]!);
};

const sampleVariables = (): string[] => {
  const sample = readFileSync(new URL('../.env-sample', import.meta.url), 'utf8');
  return [...sample.matchAll(/^([A-Z_]+)=/gm)].map((match) => match[1]!);
};

describe('loadConfig', () => {
  it('gives the SPEC defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 8000,
      redisUrl: null,
      apiKey: null,
      llmBaseUrl: 'https://openrouter.ai/api/v1',
      llmModel: 'openai/gpt-3.5-turbo-1106',
      llmFallbackModels: [],
      systemPrompt: '',
      llmTimeoutMs: 60_000,
      llmRetryScheduleMs: [1000, 5000, 30_000],
      historyMaxMessages: 20,
      historyTtlSeconds: 604_800,
      workerConcurrency: 100,
      rateLimit: { max: 5, windowMs: 60_000, label: '5 per 1 minute' },
      trustProxy: false,
      apiTokens: [],
      webhookSecret: null,
      callbackTimeoutMs: 10_000,
      callbackRetryScheduleMs: [5000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
      callbackAllowedHosts: [],
      callbackAllowPrivate: false,
      bodyLimitBytes: 262_144,
      messageMaxChars: 32_000,
      taskRetentionSeconds: 604_800,
      shutdownTimeoutMs: 10_000,
      logLevel: 'info',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads the LLM-side settings of SPEC §10, and refuses malformed ones by name', () => {
    const config = loadConfig({
      LLM_MODELS_ALLOWED: 'a/b, c',
      LLM_PRICES: 'openai/gpt-4o=2.5/10, x:free=0/0',
      CLIENT_BUDGET: '5 usd/month',
      LLM_MAX_CONCURRENCY: '5',
      LLM_RATE_LIMIT: '60/minute',
      HISTORY_MAX_TOKENS: '0',
    });
    expect(config.llmModelsAllowed).toEqual(['a/b', 'c']);
    expect(config.llmPrices.get('openai/gpt-4o')).toEqual({ inputPerMillion: 2.5, outputPerMillion: 10 });
    expect(config.llmPrices.get('x:free')).toEqual({ inputPerMillion: 0, outputPerMillion: 0 });
    expect(config.clientBudget).toEqual({ amount: 5, unit: 'usd', period: 'month', label: '5 usd/month' });
    expect(config.llmMaxConcurrency).toBe(5);
    expect(config.llmRateLimit).toMatchObject({ max: 60, windowMs: 60_000 });
    expect(config.historyMaxTokens).toBe(0);
    expect(loadConfig({})).toMatchObject({
      historyMaxTokens: 12_000,
      clientBudget: null,
      llmMaxConcurrency: 0,
      llmRateLimit: null,
      llmTokenRateLimit: null,
    });
    expect(() =>
      loadConfig({ LLM_PRICES: 'gpt=cheap', CLIENT_BUDGET: '10 apples/day', LLM_TOKEN_RATE_LIMIT: 'lots' }),
    ).toThrow(/LLM_PRICES=.*\n.*CLIENT_BUDGET=.*\n.*LLM_TOKEN_RATE_LIMIT=/);
    expect(loadConfig({ CLIENT_BUDGET: '1000 tokens/day' }).clientBudget?.label).toBe('1000 tokens/day');
  });

  it('makes first callback attempts inline in both modes, unless CALLBACK_FIRST_ATTEMPT=queued', () => {
    expect(loadConfig({}).callbackFirstAttemptInline).toBe(true);
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).callbackFirstAttemptInline).toBe(true);
    expect(loadConfig({ CALLBACK_FIRST_ATTEMPT: 'Queued' }).callbackFirstAttemptInline).toBe(false);
    expect(
      loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', CALLBACK_FIRST_ATTEMPT: 'queued' })
        .callbackFirstAttemptInline,
    ).toBe(false);
    expect(() => loadConfig({ CALLBACK_FIRST_ATTEMPT: 'auto' })).toThrow(
      /CALLBACK_FIRST_ATTEMPT="auto" is invalid: expected inline or queued/,
    );
  });

  it('accepts LLM_API_KEY as an alias of API_KEY', () => {
    expect(loadConfig({ LLM_API_KEY: 'k1' }).apiKey).toBe('k1');
    expect(loadConfig({ API_KEY: 'k2', LLM_API_KEY: 'k1' }).apiKey).toBe('k2');
  });

  it('lists every bad variable, one line each, naming it and its form', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        RATE_LIMIT: '5 per minute',
        LLM_RETRY_SCHEDULE: '1s,soon',
        WEBHOOK_SECRET: 'plain',
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as ConfigError).message.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.find((line) => line.startsWith('PORT='))).toBe(
      'PORT="eighty" is invalid: expected an integer from 0 to 65535',
    );
    expect(lines.find((line) => line.startsWith('RATE_LIMIT'))).toContain(
      'N/second, N/minute, N/hour or off',
    );
    expect(lines.find((line) => line.startsWith('LLM_RETRY_SCHEDULE'))).toContain('250ms,5s,5m,2h');
    expect(lines.find((line) => line.startsWith('WEBHOOK_SECRET'))).toContain('whsec_');
    // The secret's value itself is never echoed.
    expect((error as ConfigError).message).not.toContain('plain');
  });

  it('refuses a malformed CALLBACK_ALLOWED_HOSTS entry with one line naming the variable', () => {
    const load = () => loadConfig({ CALLBACK_ALLOWED_HOSTS: 'ok.example,10.0.0.0/99,a.*.com' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(
      /^CALLBACK_ALLOWED_HOSTS="10\.0\.0\.0\/99,a\.\*\.com" is invalid: expected comma-separated host names, IP addresses or CIDR ranges/,
    );
    expect(
      loadConfig({ CALLBACK_ALLOWED_HOSTS: 'hooks.internal,*.svc.local,10.20.0.0/16,fd00::5' })
        .callbackAllowedHosts,
    ).toEqual(['hooks.internal', '*.svc.local', '10.20.0.0/16', 'fd00::5']);
  });

  it('turns tracing on with an OTLP endpoint only, and checks the OTEL_* values it depends on', () => {
    expect(loadConfig({}).tracing).toBe(false);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing).toBe(true);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://c.example/v1/traces' }).tracing).toBe(
      true,
    );
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing,
    ).toBe(false);
    // The .env-sample values: off, as long as no endpoint is filled in.
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_TRACES_SAMPLER: 'parentbased_always_on' }).tracing,
    ).toBe(false);
    expect(loadConfig({}).callbackTraceparent).toBe(false);
    expect(loadConfig({ CALLBACK_TRACEPARENT: 'true' }).callbackTraceparent).toBe(true);

    let error: unknown;
    try {
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_TRACES_SAMPLER: 'sometimes',
        OTEL_TRACES_SAMPLER_ARG: '2',
        CALLBACK_TRACEPARENT: 'maybe',
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message.split('\n').sort()).toEqual([
      'CALLBACK_TRACEPARENT="maybe" is invalid: expected true or false',
      'OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318" is invalid: expected an http or https URL',
      'OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is invalid: expected http/protobuf or http/json',
      'OTEL_TRACES_SAMPLER="sometimes" is invalid: expected one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio',
      'OTEL_TRACES_SAMPLER_ARG="2" is invalid: expected a number from 0 to 1',
    ]);
  });

  it('parses durations, schedules and rate limits', () => {
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('2h')).toBe(7_200_000);
    expect(parseDurationMs('5 s')).toBeNull();
    expect(parseScheduleMs('')).toEqual([]);
    expect(parseScheduleMs('1s, 5m')).toEqual([1000, 300_000]);
    expect(parseRateLimit('off')).toBeNull();
    expect(parseRateLimit('100/second')).toEqual({ max: 100, windowMs: 1000, label: '100 per 1 second' });
    expect(parseRateLimit('0/minute')).toBeUndefined();
  });

  it('keeps .env-sample and the README table in step with each other', () => {
    const sample = sampleVariables();
    const table = readmeTableVariables();
    expect(sample.length).toBeGreaterThan(25);
    expect(new Set(table)).toEqual(new Set(sample));
  });

  it('reads every variable of .env-sample', () => {
    // The tracing variables are checked beside the rest, in the tracing folder's part of it.
    const source = ['./config.ts', './tracing/tracing-config.ts']
      .map((path) => readFileSync(new URL(path, import.meta.url), 'utf8'))
      .join('\n');
    for (const name of sampleVariables()) expect(source, name).toMatch(new RegExp(`\\b${name}\\b`));
  });
});
