/**
 * The console scenario: 100,000 tasks (and 5,000 conversations) written straight into the store
 * of a deployment before it starts, then each of the console's list calls timed one request at
 * a time against the running API: the median and p95 of `CONSOLE_SAMPLES` requests after
 * `CONSOLE_WARMUP` unmeasured ones, against the 50 ms target.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createRedisClient } from '../src/backends/redis/redis-connection.js';
import { openSqliteDatabase } from '../src/backends/sqlite/sqlite-database.js';
import { createRedisStore } from '../src/store/redis-store.js';
import { createSqliteStore } from '../src/store/sqlite-store.js';
import { conversationKey, type Store, type StoreLimits } from '../src/store/store.js';
import type { Row } from './report.js';
import { median, percentile } from './stats.js';

const CONVERSATIONS = 5000;
const DESTINATIONS = 20;
const CONCURRENCY = 1000;
const CONSOLE_WARMUP = 5;
const CONSOLE_SAMPLES = 30;
export const CONSOLE_TARGET_MS = 50;

const LIMITS: StoreLimits = {
  historyMaxMessages: 20,
  historyTtlSeconds: 604_800,
  taskRetentionSeconds: 604_800,
};

export interface ConsoleFigures {
  p50Ms: number;
  p95Ms: number;
}

/** By mode, then by call. */
export type ConsoleResults = Record<string, Record<string, ConsoleFigures>>;

/** Runs `fn(i)` for `0..count-1`, at most `CONCURRENCY` at once. */
async function forEach(count: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, lane));
}

/** Writes `count` tasks: 85 % completed, 10 % failed, 5 % queued; one exchange per conversation. */
export async function seedTasks(store: Store, count: number): Promise<void> {
  const now = Date.now();
  await forEach(count, async (index) => {
    const taskId = randomUUID();
    const conversationId = `conv-${index % CONVERSATIONS}`;
    await store.createTask({
      taskId,
      namespace: '',
      conversationId,
      message: `message ${index}`,
      callbackUrl: `https://dest-${index % DESTINATIONS}.example/hook`,
      metadata: null,
      // Newest last, 400 ms apart: the 100,000 span about 11 hours.
      createdAt: new Date(now - (count - index) * 400).toISOString(),
    });
    if (index < CONVERSATIONS) {
      await store.completeGeneration(taskId, conversationKey('', conversationId), {
        reply: `reply ${index}`,
        model: 'bench',
        usage: null,
        completedAt: new Date().toISOString(),
        llmDurationMs: 200 + (index % 800),
      });
    }
    // Independent of the destination (index % DESTINATIONS): every destination has every status.
    const bucket = Math.floor(index / DESTINATIONS) % 20;
    if (bucket < 17) await store.setStatus(taskId, 'completed');
    else if (bucket < 19) await store.setStatus(taskId, 'failed');
  });
}

/** Seeds the SQLite file the embedded service will open in `dataDir`. */
export async function seedSqlite(dataDir: string, count: number): Promise<void> {
  const db = openSqliteDatabase({ path: join(dataDir, 'llm-webhook.db') });
  const store = createSqliteStore(db, LIMITS);
  try {
    await seedTasks(store, count);
  } finally {
    await store.close();
    db.close();
  }
}

/** Seeds the redis store under the service's default prefix. */
export async function seedRedis(redisUrl: string, count: number): Promise<void> {
  const client = createRedisClient(redisUrl, { role: 'command' });
  try {
    await seedTasks(createRedisStore(client, LIMITS, { keyPrefix: '{llm-webhook}:' }), count);
  } finally {
    client.disconnect();
  }
}

async function timed(url: string, init: RequestInit = {}): Promise<{ ms: number; json: unknown }> {
  const started = performance.now();
  const response = await fetch(url, init);
  const json = (await response.json()) as unknown;
  const ms = performance.now() - started;
  if (!response.ok)
    throw new Error(`${init.method ?? 'GET'} ${url}: ${response.status} ${JSON.stringify(json)}`);
  return { ms, json };
}

/** Times every list call against `baseUrl`. */
export async function measureConsole(baseUrl: string): Promise<Record<string, ConsoleFigures>> {
  // A cursor 20 pages deep: keyset pagination costs the same at any depth.
  let cursor: string | null = null;
  for (let page = 0; page < 20; page++) {
    const { json } = await timed(`${baseUrl}/tasks?limit=50${cursor === null ? '' : `&cursor=${cursor}`}`);
    cursor = (json as { next_cursor: string | null }).next_cursor;
  }
  const destination = encodeURIComponent('https://dest-7.example:443');
  const post = (body: unknown): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const calls: Array<[string, string, RequestInit?]> = [
    ['GET /tasks', '/tasks?limit=50'],
    ['GET /tasks?status=failed', '/tasks?limit=50&status=failed'],
    ['GET /tasks?conversation_id', '/tasks?limit=50&conversation_id=conv-42'],
    ['GET /tasks?destination', `/tasks?limit=50&destination=${destination}`],
    ['GET /tasks?status&destination', `/tasks?limit=50&status=failed&destination=${destination}`],
    ['GET /tasks (page 21)', `/tasks?limit=50&cursor=${cursor}`],
    ['GET /conversations', '/conversations?limit=50'],
    ['POST /tasks/redeliver dry_run (all finished)', '/tasks/redeliver', post({ dry_run: true })],
    [
      'POST /tasks/redeliver dry_run status=failed',
      '/tasks/redeliver',
      post({ status: 'failed', dry_run: true }),
    ],
    ['GET /stats?minutes=60', '/stats?minutes=60'],
    ['GET /stats?minutes=1440', '/stats?minutes=1440'],
  ];
  const figures: Record<string, ConsoleFigures> = {};
  for (const [name, path, init] of calls) {
    const samples: number[] = [];
    for (let index = 0; index < CONSOLE_WARMUP + CONSOLE_SAMPLES; index++) {
      const { ms } = await timed(`${baseUrl}${path}`, init);
      if (index >= CONSOLE_WARMUP) samples.push(ms);
    }
    figures[name] = { p50Ms: median(samples), p95Ms: percentile(samples, 95) };
  }
  return figures;
}

export function consoleRows(results: ConsoleResults): Row[] {
  const rows: Row[] = [];
  for (const [mode, calls] of Object.entries(results)) {
    for (const [call, figures] of Object.entries(calls)) {
      rows.push({
        scenario: '6 console (100k tasks)',
        mode,
        metric: `${call} p50 ms`,
        value: figures.p50Ms,
        target: `< ${CONSOLE_TARGET_MS}`,
        pass: figures.p50Ms < CONSOLE_TARGET_MS,
      });
      rows.push({
        scenario: '6 console (100k tasks)',
        mode,
        metric: `${call} p95 ms`,
        value: figures.p95Ms,
        target: `< ${CONSOLE_TARGET_MS}`,
        pass: figures.p95Ms < CONSOLE_TARGET_MS,
      });
    }
  }
  return rows;
}
