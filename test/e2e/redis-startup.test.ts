/**
 * The redis mode when the processes start before Redis does (a compose file brings them up
 * together): they start anyway, answer 503 within 2 s and report not ready, heal once Redis
 * answers, and a request answered 503 meanwhile leaves no trace behind.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockLlm, startMockLlm } from '../../src/dev/mock-llm.js';
import { createRedisClient } from '../../src/shared/redis-connection.js';
import { type CallbackReceiver, startCallbackReceiver } from '../support/callback-receiver.js';
import { type RedisServer, startRedisServer } from '../support/redis-server.js';
import { freePort, type ServiceProcess, startService } from '../support/start-service.js';

let llm: MockLlm;
let receiver: CallbackReceiver;
const dirs: string[] = [];

beforeAll(async () => {
  llm = await startMockLlm();
  receiver = await startCallbackReceiver();
});

afterAll(async () => {
  await llm.close();
  await receiver.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

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

async function statusOf(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return 0;
  }
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

async function keysMatching(url: string, pattern: string): Promise<string[]> {
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

describe('redis mode, start-up before Redis', () => {
  it('starts without Redis, answers 503 meanwhile, then works with no trace of what was refused', async () => {
    const redisPort = await freePort();
    const prefix = `{t-${randomUUID().slice(0, 8)}}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'llm-webhook-redis-e2e-'));
    dirs.push(dataDir);
    const env = {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      QUEUE_PREFIX: prefix,
      DATA_DIR: dataDir,
      RATE_LIMIT: 'off',
      API_KEY: 'test-key',
      LLM_BASE_URL: llm.url,
      CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    };
    const services: ServiceProcess[] = [];
    let redis: RedisServer | null = null;
    try {
      const [api, worker] = await Promise.all([
        startService({ role: 'api', env }),
        startService({ role: 'worker', env }),
      ]);
      services.push(api, worker);
      await worker.waitForLog((line) => line.msg === 'listening');
      expect(await statusOf(`${api.url}/readyz`)).toBe(503);
      expect(await statusOf(`${worker.url}/readyz`)).toBe(503);
      for (let n = 0; n < 3; n += 1) {
        const startedAt = performance.now();
        const { status, json } = await postWebhook(api.url, {
          message: `refused ${n}`,
          callback_url: `${receiver.url}/s`,
        });
        expect(status).toBe(503);
        expect(json.detail).toEqual(expect.any(String));
        expect(performance.now() - startedAt).toBeLessThan(2_500);
      }

      redis = await startRedisServer({ port: redisPort });
      await until('the API ready', async () => (await statusOf(`${api.url}/readyz`)) === 200);
      await until('the worker ready', async () => (await statusOf(`${worker.url}/readyz`)) === 200);
      const { status, json } = await postWebhook(api.url, {
        message: 'accepted',
        callback_url: `${receiver.url}/s`,
      });
      expect(status).toBe(200);
      const id = json.task_id as string;
      await receiver.waitFor((entry) => entry.json?.task_id === id, 20_000);

      // Only the accepted task was ever stored or run: the refused ones were not sent on connect.
      expect((await keysMatching(redis.url, `${prefix}:task:*`)).sort()).toEqual([
        `${prefix}:task:${id}`,
        `${prefix}:task:${id}:deliveries`,
      ]);
      await worker.waitForLog((line) => line.msg === 'calling LLM');
      expect(worker.logs.filter((line) => line.msg === 'calling LLM').map((line) => line.task_id)).toEqual([
        id,
      ]);
      expect(receiver.received.map((entry) => entry.json?.task_id)).toEqual([id]);
    } finally {
      await Promise.all(services.map((service) => service.kill('SIGKILL')));
      await redis?.stop();
    }
  });
});
