/**
 * The service deployed as real processes, for end-to-end tests: a file-wide mock LLM and
 * callback receiver, and per test fresh temp dirs, redis-servers and services, all stopped after
 * each test (services with SIGKILL) so nothing one test left running reaches the next.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { createRedisClient } from '../../src/backends/redis/redis-connection.js';
import { freePort } from '../../src/dev/harness.js';
import type { MockChatMessage, MockLlmOptions } from '../../src/dev/mock-llm.js';
import type { ReceivedCallback } from './callback-receiver.js';
import { postWebhook, type Upstreams, useUpstreams } from './in-process-app.js';
import { type RedisServer, startRedisServer } from './redis-server.js';
import { type ServiceProcess, type StartServiceOptions, startService } from './start-service.js';

/** The environment of one redis-mode run: its own Redis port, hash-tagged prefix and DATA_DIR. */
export interface RedisRun {
  /** `redis://127.0.0.1:<port>` */
  redisUrl: string;
  redisPort: number;
  /** `{t-xxxxxxxx}`: one Redis Cluster hash tag, fresh per run. */
  prefix: string;
  dataDir: string;
  /** {@link Deployment.env} plus REDIS_URL, QUEUE_PREFIX and DATA_DIR, then `extra`. */
  env(extra?: Record<string, string>): Record<string, string>;
}

/** A {@link RedisRun} whose redis-server is already answering. */
export interface StartedRedisRun extends RedisRun {
  redis: RedisServer;
}

/** A {@link RedisRun} whose redis-server is not running yet. */
export interface PlannedRedisRun extends RedisRun {
  /** Starts the run's redis-server on its port (stopped after the test). */
  startRedis(): Promise<RedisServer>;
}

export interface Deployment extends Upstreams {
  /**
   * What every service of the file is started with: the mock LLM, callbacks allowed to
   * 127.0.0.1, short retries, an API key; then `extra`.
   */
  env(extra?: Record<string, string>): Record<string, string>;
  /** A temp dir, removed after the file's last test. */
  tempDir(): string;
  /** A fresh redis-server, prefix and DATA_DIR: nothing is shared with another test. */
  freshRun(): Promise<StartedRedisRun>;
  /** A fresh run whose redis-server starts only when the test says so. */
  plannedRun(): Promise<PlannedRedisRun>;
  /** {@link startService}, SIGKILLed after the test unless it has exited already. */
  start(
    role: 'all' | 'api' | 'worker',
    env: Record<string, string>,
    options?: Omit<StartServiceOptions, 'role' | 'env'>,
  ): Promise<ServiceProcess>;
  /** POSTs `/webhook`, expects 200 and returns the task id. */
  accept(base: string, body: Record<string, unknown>): Promise<string>;
  /** Resolves once the receiver holds at least one callback for each of `ids`. */
  deliveredAll(ids: readonly string[], timeoutMs?: number): Promise<ReceivedCallback[]>;
}

/** Registers the hooks of a {@link Deployment}; call it at the top level of a test file. */
export function useDeployment(llmOptions: MockLlmOptions = {}): Deployment {
  const upstreams = useUpstreams(llmOptions);
  const { llm, receiver } = upstreams;
  const services: ServiceProcess[] = [];
  const redisServers: RedisServer[] = [];
  const dirs: string[] = [];

  afterEach(async () => {
    await Promise.all(services.splice(0).map((service) => service.kill('SIGKILL')));
    await Promise.all(redisServers.splice(0).map((server) => server.stop()));
  });
  afterAll(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    API_KEY: 'test-key',
    LLM_BASE_URL: llm.url,
    CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    CALLBACK_RETRY_SCHEDULE: '100ms,100ms,100ms',
    ...extra,
  });

  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'llm-webhook-e2e-'));
    dirs.push(dir);
    return dir;
  };

  const startRedis = async (port: number): Promise<RedisServer> => {
    const redis = await startRedisServer({ port });
    redisServers.push(redis);
    return redis;
  };

  const plannedRun = async (): Promise<PlannedRedisRun> => {
    const redisPort = await freePort();
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const prefix = `{t-${randomUUID().slice(0, 8)}}`;
    const dataDir = tempDir();
    return {
      redisUrl,
      redisPort,
      prefix,
      dataDir,
      env: (extra = {}) =>
        env({ REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, RATE_LIMIT: 'off', ...extra }),
      startRedis: () => startRedis(redisPort),
    };
  };

  return {
    ...upstreams,
    env,
    tempDir,
    plannedRun,
    async freshRun() {
      const { startRedis: start, ...run } = await plannedRun();
      return { ...run, redis: await start() };
    },
    async start(role, serviceEnv, options = {}) {
      const service = await startService({ ...options, role, env: serviceEnv });
      services.push(service);
      return service;
    },
    async accept(base, body) {
      const { status, json } = await postWebhook(base, body);
      expect(status, JSON.stringify(json)).toBe(200);
      return json.task_id as string;
    },
    deliveredAll(ids, timeoutMs = 40_000) {
      return receiver.waitUntil(
        (entries) => ids.every((id) => entries.some((entry) => entry.json?.task_id === id)),
        timeoutMs,
      );
    },
  };
}

/** The status `GET url` answers with, or 0 when it does not answer within 5 s. */
export async function statusOf(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
}

export function lastUserMessage(messages: readonly MockChatMessage[]): string {
  return messages.filter((message) => message.role === 'user').at(-1)?.content ?? '';
}

/** The task ids of a process's `calling LLM` log lines, in order. */
export function callingLlmTaskIds(service: ServiceProcess): string[] {
  return service.logs.filter((line) => line.msg === 'calling LLM').map((line) => line.task_id as string);
}

/** Every key of the Redis at `url` that matches `pattern` (SCAN, so a live server is not blocked). */
export async function scanKeys(url: string, pattern = '*'): Promise<string[]> {
  const client = createRedisClient(url, { role: 'command' });
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys;
  } finally {
    client.disconnect();
  }
}

/** POSTs `/webhook` while Redis is out of reach: expects a 503 with a detail, within 2.5 s. */
export async function expectRefusedQuickly(base: string, body: Record<string, unknown>): Promise<void> {
  const startedAt = performance.now();
  const { status, json } = await postWebhook(base, body);
  const elapsedMs = performance.now() - startedAt;
  expect(status).toBe(503);
  expect(json.detail).toEqual(expect.any(String));
  expect(elapsedMs).toBeLessThan(2_500);
}
