/**
 * The redis mode as real processes: one API and two workers share one Redis, keep every
 * conversation in order and deliver every callback once; role `all` runs both sides in one
 * process; every key of a run carries the QUEUE_PREFIX hash tag (one Redis Cluster slot).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MockChatMessage, type MockLlm, mockReplyText, startMockLlm } from '../../src/dev/mock-llm.js';
import { createRedisClient } from '../../src/shared/redis-connection.js';
import { type CallbackReceiver, startCallbackReceiver } from '../support/callback-receiver.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';
import { type ServiceProcess, startService } from '../support/start-service.js';

let llm: MockLlm;
let receiver: CallbackReceiver;
const services: ServiceProcess[] = [];
const redisServers: RedisServer[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  llm = await startMockLlm();
  receiver = await startCallbackReceiver();
});

afterEach(async () => {
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
  prefix: string;
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
    prefix,
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

/** Unfinished jobs as the service reports them on /metrics (waiting + active + delayed). */
async function unfinishedJobs(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const values = [...text.matchAll(/^llm_webhook_queue_jobs\{state="\w+"\} (\d+)$/gm)].map((match) =>
    Number(match[1]),
  );
  return values.length === 3 ? values.reduce((sum, value) => sum + value, 0) : Number.NaN;
}

function lastUserMessage(messages: readonly MockChatMessage[]): string {
  return messages.filter((message) => message.role === 'user').at(-1)?.content ?? '';
}

function callingLlmTaskIds(service: ServiceProcess): string[] {
  return service.logs.filter((line) => line.msg === 'calling LLM').map((line) => line.task_id as string);
}

/** Redis Cluster hashes only the part between the first `{` and the next `}` (when non-empty). */
function hashTag(key: string): string | null {
  const open = key.indexOf('{');
  if (open === -1) return null;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return null;
  return key.slice(open + 1, close);
}

async function allKeys(url: string): Promise<string[]> {
  const client = createRedisClient(url, { role: 'command' });
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await client.scan(cursor, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys;
  } finally {
    client.disconnect();
  }
}

describe('redis mode across processes', () => {
  it('one API and two workers: 20 conversations of 4 messages, each delivered once, in order, with history', async () => {
    const run = await freshRun();
    llm.setLatency(50);
    // A small concurrency per worker, so neither can take every conversation by itself.
    const workerEnv = run.env({ WORKER_CONCURRENCY: '4' });
    const [api, workerA, workerB] = await Promise.all([
      start('api', run.env()),
      start('worker', workerEnv),
      start('worker', workerEnv),
    ]);

    const conversations = Array.from({ length: 20 }, (_, n) => `conv-${n}`);
    const accepted = new Map<string, string[]>(conversations.map((id) => [id, []]));
    // Message k of every conversation in one parallel wave: waves fix each conversation's order.
    for (let k = 0; k < 4; k += 1) {
      const ids = await Promise.all(
        conversations.map((conversation) =>
          accept(api.url, {
            message: `${conversation} message ${k}`,
            callback_url: `${receiver.url}/${conversation}`,
            conversation_id: conversation,
          }),
        ),
      );
      for (const [n, id] of ids.entries()) accepted.get(conversations[n]!)!.push(id);
    }
    const allIds = [...accepted.values()].flat();
    expect(new Set(allIds).size).toBe(80);

    await receiver.waitUntil(
      (entries) => new Set(entries.map((entry) => entry.json?.task_id)).size >= 80,
      45_000,
    );
    // Wait for the queue to drain, so a duplicate delivery would have had its chance to arrive.
    await until('every task completed', async () => {
      const records = await Promise.all(
        allIds.map(
          async (id) => ((await (await fetch(`${api.url}/tasks/${id}`)).json()) as { status: string }).status,
        ),
      );
      return records.every((status) => status === 'completed');
    });
    await until('an empty queue', async () => (await unfinishedJobs(api.url)) === 0);

    // Exactly once each, in this happy path.
    const perTask = new Map<string, number>();
    for (const entry of receiver.received) {
      const id = entry.json?.task_id as string;
      perTask.set(id, (perTask.get(id) ?? 0) + 1);
    }
    expect(perTask.size).toBe(80);
    for (const id of allIds) expect(perTask.get(id), id).toBe(1);

    for (const conversation of conversations) {
      // Callbacks of one conversation arrive in acceptance order.
      const delivered = receiver.received
        .filter((entry) => entry.json?.conversation_id === conversation)
        .map((entry) => entry.json?.task_id);
      expect(delivered).toEqual(accepted.get(conversation));
      for (const entry of receiver.received.filter((e) => e.json?.conversation_id === conversation)) {
        expect(entry.json?.status).toBe('completed');
      }

      // Prompts of 1, 3, 5, 7 messages, each the previous one plus its reply plus the new message.
      const prompts = llm.requests
        .map((request) => request.messages)
        .filter((messages) => lastUserMessage(messages).startsWith(`${conversation} message`));
      expect(prompts.map((messages) => messages.length)).toEqual([1, 3, 5, 7]);
      prompts.forEach((messages, k) => {
        expect(lastUserMessage(messages)).toBe(`${conversation} message ${k}`);
        if (k === 0) return;
        const previous = prompts[k - 1]!;
        expect(messages.slice(0, previous.length)).toEqual(previous);
        expect(messages[previous.length]).toEqual({ role: 'assistant', content: mockReplyText(previous) });
      });
    }

    // Both workers did work; the API never called the LLM; every worker line about a task names it.
    await until(
      'the log lines',
      () => callingLlmTaskIds(workerA).length + callingLlmTaskIds(workerB).length >= 80,
    );
    const byA = callingLlmTaskIds(workerA);
    const byB = callingLlmTaskIds(workerB);
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.length).toBeGreaterThan(0);
    expect(byA.length + byB.length).toBe(80);
    expect(new Set([...byA, ...byB])).toEqual(new Set(allIds));
    expect(callingLlmTaskIds(api)).toEqual([]);
    for (const worker of [workerA, workerB]) {
      for (const line of worker.logs.filter((l) =>
        ['calling LLM', 'LLM replied', 'callback delivered'].includes(l.msg as string),
      )) {
        expect(allIds).toContain(line.task_id);
      }
    }

    // A worker serves only its operations endpoints.
    await workerA.waitForLog((line) => line.msg === 'listening');
    const onWorker = await fetch(`${workerA.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'hi', callback_url: `${receiver.url}/x` }),
    });
    expect(onWorker.status).toBe(404);
    expect(((await onWorker.json()) as { detail: unknown }).detail).toEqual(expect.any(String));
    expect((await fetch(`${workerA.url}/readyz`)).status).toBe(200);
  });

  it('role all with REDIS_URL runs API and worker in one process, on Redis', async () => {
    const run = await freshRun();
    llm.setLatency(0);
    const dataDir = mkdtempSync(join(tmpdir(), 'llm-webhook-redis-all-'));
    dirs.push(dataDir);
    const service = await start('all', run.env({ DATA_DIR: dataDir }));
    expect(service.logs.some((line) => line.msg === 'worker started' && line.mode === 'redis')).toBe(true);

    const ids: string[] = [];
    for (let k = 0; k < 3; k += 1) {
      ids.push(
        await accept(service.url, {
          message: `all ${k}`,
          callback_url: `${receiver.url}/all`,
          conversation_id: 'all',
        }),
      );
    }
    await receiver.waitUntil(
      (entries) => ids.every((id) => entries.some((entry) => entry.json?.task_id === id)),
      20_000,
    );
    expect(receiver.received.map((entry) => entry.json?.task_id)).toEqual(ids);
    expect(llm.requests.map((request) => request.messages.length)).toEqual([1, 3, 5]);
    // Log lines travel through a pipe and may trail the callbacks.
    await until('the log lines', () => callingLlmTaskIds(service).length >= 3);
    expect(callingLlmTaskIds(service)).toEqual(ids);

    const history = (await (await fetch(`${service.url}/conversations/all/messages`)).json()) as {
      messages: Array<{ role: string; content: string }>;
    };
    expect(history.messages.map((message) => message.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(history.messages[4]?.content).toBe('all 2');
    // Everything lives in Redis: the task records are there, and no SQLite file was written.
    const keys = await allKeys(run.redis.url);
    for (const id of ids) expect(keys).toContain(`${run.prefix}:task:${id}`);
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
  });

  it('every key of a run carries the QUEUE_PREFIX hash tag, but the rate-limit counters', async () => {
    const run = await freshRun();
    llm.setLatency(0);
    // Rate limiting on, so its counters show up in the scan too.
    const env = run.env({ RATE_LIMIT: '1000/minute' });
    const [api] = await Promise.all([start('api', env), start('worker', env)]);
    const ids = [
      await accept(api.url, { message: 'one', callback_url: `${receiver.url}/k`, conversation_id: 'keys' }),
      await accept(api.url, { message: 'two', callback_url: `${receiver.url}/k`, conversation_id: 'keys' }),
    ];
    const keyed = await fetch(`${api.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'key-1' },
      body: JSON.stringify({ message: 'three', callback_url: `${receiver.url}/k` }),
    });
    expect(keyed.status).toBe(200);
    ids.push(((await keyed.json()) as { task_id: string }).task_id);
    await receiver.waitUntil(
      (entries) => ids.every((id) => entries.some((entry) => entry.json?.task_id === id)),
      20_000,
    );
    // One task left unfinished, so the keys of a job in flight are part of the scan as well.
    llm.setLatency(60_000);
    const slow = await accept(api.url, {
      message: 'slow',
      callback_url: `${receiver.url}/k`,
      conversation_id: 'slow',
    });
    await until('the slow task at the LLM', () =>
      llm.requests.some((request) => lastUserMessage(request.messages) === 'slow'),
    );
    expect(slow).toEqual(expect.any(String));

    const keys = await allKeys(run.redis.url);
    const tag = run.prefix.slice(1, -1);
    const rateLimitPrefix = `${tag}:rate-limit:`;
    const untagged = keys.filter((key) => hashTag(key) !== tag);
    // @fastify/rate-limit keeps one counter per client and route, each used alone by a
    // single-key command: they need no common slot, and spreading them spreads the load.
    expect(untagged.filter((key) => !key.startsWith(rateLimitPrefix))).toEqual([]);
    expect(untagged.length).toBeGreaterThan(0);
    // The queue, the store and the idempotency claims are all there, under the tag.
    const tagged = keys.filter((key) => hashTag(key) === tag);
    for (const part of [':task:', ':history:', ':idem:', ':jobs:lw:jobs', ':jobs:meta']) {
      expect(
        tagged.some((key) => key.includes(part)),
        part,
      ).toBe(true);
    }
  });
});
