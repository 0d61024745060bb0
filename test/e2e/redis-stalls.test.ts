/**
 * The redis mode when something stops without going away: a Redis that hangs (SIGSTOP) must
 * still get a 503 within 2 s and heal on SIGCONT; a worker asked to stop (SIGTERM) with a job in
 * a slow LLM call hands it back at once, so another worker finishes it long before its lock
 * would have expired.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MockChatMessage, type MockLlm, startMockLlm } from '../../src/dev/mock-llm.js';
import { type CallbackReceiver, startCallbackReceiver } from '../support/callback-receiver.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';
import { type ServiceProcess, startService } from '../support/start-service.js';

let llm: MockLlm;
let receiver: CallbackReceiver;
const services: ServiceProcess[] = [];
const redisServers: RedisServer[] = [];
const frozen = new Set<number>();
const dirs: string[] = [];

beforeAll(async () => {
  llm = await startMockLlm();
  receiver = await startCallbackReceiver();
});

afterEach(async () => {
  for (const pid of frozen) process.kill(pid, 'SIGCONT');
  frozen.clear();
  await Promise.all(services.splice(0).map((service) => service.kill('SIGKILL')));
  await Promise.all(redisServers.splice(0).map((server) => server.stop()));
  llm.reset();
  receiver.reset();
});

afterAll(async () => {
  await llm.close();
  await receiver.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  redis: RedisServer;
  env: (extra?: Record<string, string>) => Record<string, string>;
}

/** A fresh redis-server and a fresh hash-tagged prefix: nothing is shared with another test. */
async function freshRun(): Promise<Run> {
  const redis = await startRedisServer();
  redisServers.push(redis);
  const prefix = `{t-${randomUUID().slice(0, 8)}}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'llm-webhook-redis-e2e-'));
  dirs.push(dataDir);
  return {
    redis,
    env: (extra = {}) => ({
      REDIS_URL: redis.url,
      QUEUE_PREFIX: prefix,
      DATA_DIR: dataDir,
      RATE_LIMIT: 'off',
      API_KEY: 'test-key',
      LLM_BASE_URL: llm.url,
      CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
      CALLBACK_RETRY_SCHEDULE: '100ms,100ms,100ms',
      ...extra,
    }),
  };
}

async function start(role: 'all' | 'api' | 'worker', env: Record<string, string>): Promise<ServiceProcess> {
  const service = await startService({ role, env });
  services.push(service);
  return service;
}

async function postWebhook(
  base: string,
  body: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${base}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function accept(base: string, body: Record<string, unknown>): Promise<string> {
  const { status, json } = await postWebhook(base, body);
  expect(status, JSON.stringify(json)).toBe(200);
  return json.task_id as string;
}

/** Polls `check` every 50 ms until it returns true, failing after `timeoutMs`. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function statusOf(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
}

function lastUserMessage(messages: readonly MockChatMessage[]): string {
  return messages.filter((message) => message.role === 'user').at(-1)?.content ?? '';
}

function callingLlmTaskIds(service: ServiceProcess): string[] {
  return service.logs.filter((line) => line.msg === 'calling LLM').map((line) => line.task_id as string);
}

function deliveredAll(ids: readonly string[], timeoutMs = 30_000): Promise<unknown> {
  return receiver.waitUntil(
    (entries) => ids.every((id) => entries.some((entry) => entry.json?.task_id === id)),
    timeoutMs,
  );
}

function redisPid(port: number): number {
  const info = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'info', 'server'], {
    encoding: 'utf8',
  });
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no process_id in INFO: ${info}`);
  return pid;
}

describe('redis mode, stalls', () => {
  it('answers 503 within 2 s while Redis hangs, and finishes every task once it resumes', async () => {
    const run = await freshRun();
    llm.setLatency(1_000);
    const env = run.env();
    const [api, worker] = await Promise.all([start('api', env), start('worker', env)]);
    const inFlight = await accept(api.url, {
      message: 'in flight',
      callback_url: `${receiver.url}/s`,
      conversation_id: 's',
    });
    const behind = await accept(api.url, {
      message: 'behind',
      callback_url: `${receiver.url}/s`,
      conversation_id: 's',
    });
    await until('the first call at the LLM', () => llm.requests.length >= 1);

    // Connections stay open but nothing answers: only timeouts can save the request.
    const pid = redisPid(run.redis.port);
    process.kill(pid, 'SIGSTOP');
    frozen.add(pid);
    for (let n = 0; n < 2; n += 1) {
      const startedAt = performance.now();
      const { status, json } = await postWebhook(api.url, {
        message: `frozen ${n}`,
        callback_url: `${receiver.url}/s`,
        conversation_id: 'frozen',
      });
      expect(status).toBe(503);
      expect(json.detail).toEqual(expect.any(String));
      expect(performance.now() - startedAt).toBeLessThan(2_500);
    }
    const readyStartedAt = performance.now();
    expect(await statusOf(`${api.url}/readyz`)).toBe(503);
    expect(performance.now() - readyStartedAt).toBeLessThan(2_500);
    // The LLM answers meanwhile; storing its result fails or waits.
    await worker.waitForLog((line) => line.msg === 'LLM replied' && line.task_id === inFlight);

    process.kill(pid, 'SIGCONT');
    frozen.delete(pid);
    await until('the API ready again', async () => (await statusOf(`${api.url}/readyz`)) === 200);
    const after = await accept(api.url, {
      message: 'after',
      callback_url: `${receiver.url}/s`,
      conversation_id: 's',
    });
    llm.setLatency(0);
    await deliveredAll([inFlight, behind, after]);

    // The conversation kept its order and its history holds each exchange once. (The requests
    // answered 503 are not looked at: written to a socket Redis had stopped reading, they may
    // still run once it resumes, and the API cannot know.)
    const order = [
      ...new Set(
        receiver.received
          .filter((entry) => entry.json?.conversation_id === 's')
          .map((entry) => entry.json?.task_id),
      ),
    ];
    expect(order).toEqual([inFlight, behind, after]);
    const history = (await (await fetch(`${api.url}/conversations/s/messages`)).json()) as {
      messages: Array<{ role: string; content: string }>;
    };
    expect(
      history.messages.filter((message) => message.role === 'user').map((message) => message.content),
    ).toEqual(['in flight', 'behind', 'after']);
    const lastPrompt = llm.requests.filter((request) => lastUserMessage(request.messages) === 'after').at(-1);
    expect(lastPrompt?.messages).toHaveLength(5);
  });

  it('a worker stopped with SIGTERM hands its running job back at once; another worker finishes it', async () => {
    const run = await freshRun();
    llm.setLatency(60_000);
    // Locks that would take a minute to expire: only the hand-back can make the deadline below.
    const env = run.env({ QUEUE_LOCK_DURATION_MS: '60000', SHUTDOWN_TIMEOUT_MS: '300' });
    const [api, leaving] = await Promise.all([start('api', env), start('worker', env)]);
    const id = await accept(api.url, {
      message: 'handed back',
      callback_url: `${receiver.url}/h`,
      conversation_id: 'h',
    });
    await until('the call at the LLM', () => callingLlmTaskIds(leaving).includes(id));

    const exit = await leaving.kill('SIGTERM');
    expect(exit.code).toBe(0);
    expect(receiver.received).toHaveLength(0);

    llm.setLatency(0);
    const staying = await start('worker', env);
    await deliveredAll([id], 20_000);
    await until('the log line', () => callingLlmTaskIds(staying).length >= 1);
    expect(callingLlmTaskIds(staying)).toEqual([id]);
    const record = (await (await fetch(`${api.url}/tasks/${id}`)).json()) as { attempts: { llm: number } };
    expect(record.attempts.llm).toBe(2);
  });
});
