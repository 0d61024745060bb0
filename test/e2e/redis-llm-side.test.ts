/**
 * SPEC §10 in redis mode, as real processes on one Redis: LLM_MAX_CONCURRENCY across two
 * workers, a provider 429 pausing the model for both, usage roll-ups that every process and a
 * restart agree on, and a budget shared by two API processes.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { useDeployment } from '../support/deployment.js';
import { postWebhook } from '../support/in-process-app.js';

const UNPRICED = 'mock/unpriced';
const { llm, receiver, freshRun, start, accept, deliveredAll } = useDeployment({
  costPerMillionTokens: (model) => (model === UNPRICED ? null : 2),
});

const TOKEN_A = 'token-a-0123456789abcdef';
const TOKEN_B = 'token-b-0123456789abcdef';
const asA = { authorization: `Bearer ${TOKEN_A}` };
const asB = { authorization: `Bearer ${TOKEN_B}` };

interface Usage {
  total_tokens: number;
  prompt_tokens: number;
  cost?: number;
}
interface UsageReport {
  usage: Array<{ key: string; requests: number; total_tokens: number; cost: number }>;
  total: { requests: number; total_tokens: number; cost: number };
}
const nano = (usd: number): number => Math.round(usd * 1e9);

async function usageOf(base: string, groupBy: string, headers: Record<string, string>): Promise<UsageReport> {
  const response = await fetch(`${base}/usage?group_by=${groupBy}`, { headers });
  expect(response.status).toBe(200);
  return (await response.json()) as UsageReport;
}

describe('the LLM side in redis mode', () => {
  it('two workers never have more than LLM_MAX_CONCURRENCY calls in flight, over 200 tasks', async () => {
    const run = await freshRun();
    llm.setLatency(30);
    const workerEnv = run.env({ LLM_MAX_CONCURRENCY: '5', WORKER_CONCURRENCY: '100' });
    const [api] = await Promise.all([
      start('api', run.env()),
      start('worker', workerEnv),
      start('worker', workerEnv),
    ]);
    const ids: string[] = [];
    for (let wave = 0; wave < 4; wave += 1) {
      ids.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, (_, n) =>
            accept(api.url, { message: `m${wave}-${n}`, callback_url: `${receiver.url}/c${wave}-${n}` }),
          ),
        )),
      );
    }
    await deliveredAll(ids, 120_000);
    expect(llm.requests.filter((request) => request.status === 200)).toHaveLength(200);
    expect(llm.maxInFlight).toBeLessThanOrEqual(5);
    expect(llm.maxInFlight).toBeGreaterThan(1);
    for (const id of ids.slice(0, 20)) {
      const task = (await (await fetch(`${api.url}/tasks/${id}`)).json()) as {
        status: string;
        attempts: { llm: number };
      };
      expect(task).toMatchObject({ status: 'completed', attempts: { llm: 1 } });
    }
  });

  it('a 429 with Retry-After pauses the model for both workers; no task fails', async () => {
    const run = await freshRun();
    const workerEnv = run.env({ LLM_RETRY_SCHEDULE: '50ms', WORKER_CONCURRENCY: '20' });
    const [api, workerA, workerB] = await Promise.all([
      start('api', run.env()),
      start('worker', workerEnv),
      start('worker', workerEnv),
    ]);
    llm.rateLimit(2000, 2);
    const first = await accept(api.url, { message: 'first', callback_url: `${receiver.url}/p` });
    const pausedAt = await waitFor(() => llm.rateLimitedAt, 'the first 429');
    // The model is paused (in Redis) once a worker logs the retry of that call.
    await waitFor(
      () =>
        [...workerA.logs, ...workerB.logs].some(
          (line) => line.msg === 'LLM call failed; retrying' && line.err_type === 'llm_rate_limited',
        ),
      'a worker to pause the model',
    );
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        accept(api.url, { message: `m${n}`, callback_url: `${receiver.url}/p${n}` }),
      ),
    );
    const callbacks = await deliveredAll([first, ...ids], 60_000);
    expect(callbacks.every((entry) => entry.json?.status === 'completed')).toBe(true);
    expect(llm.requests.filter((r) => r.receivedAt > pausedAt && r.receivedAt < pausedAt + 2000)).toEqual([]);
    expect(llm.requests.filter((r) => r.status === 429)).toHaveLength(1);
  });

  it('usage and cost roll up in Redis: GET /usage matches the callbacks on every API process and after a restart', async () => {
    const run = await freshRun();
    const env = run.env({
      API_TOKENS: `${TOKEN_A},${TOKEN_B}`,
      LLM_MODEL: 'mock/priced',
      LLM_MODELS_ALLOWED: UNPRICED,
      LLM_PRICES: `${UNPRICED}=3/7`,
    });
    const [apiA, apiB, worker] = await Promise.all([
      start('api', env),
      start('api', env),
      start('worker', env),
    ]);
    const sent: Array<{ id: string; headers: Record<string, string> }> = [];
    for (let n = 0; n < 20; n += 1) {
      const headers = n % 2 === 0 ? asA : asB;
      const { status, json } = await postWebhook(
        n % 4 < 2 ? apiA.url : apiB.url,
        {
          message: `message ${n} ${'word '.repeat(n)}`,
          callback_url: `${receiver.url}/u`,
          conversation_id: `conv-${n % 3}`,
          options: { model: n % 3 === 0 ? UNPRICED : 'mock/priced' },
        },
        headers,
      );
      expect(status).toBe(200);
      sent.push({ id: json.task_id as string, headers });
    }
    await deliveredAll(sent.map(({ id }) => id));
    const callbackOf = new Map(
      receiver.received.map((entry) => [entry.json?.task_id as string, entry.json!]),
    );
    const expectReports = async (bases: string[]) => {
      const mine = sent.filter(({ headers }) => headers === asA).map(({ id }) => callbackOf.get(id)!);
      for (const base of bases) {
        for (const groupBy of ['day', 'model', 'conversation'] as const) {
          const report = await usageOf(base, groupBy, asA);
          const keyOf = (c: Record<string, unknown>) =>
            groupBy === 'day'
              ? String(c.completed_at).slice(0, 10)
              : groupBy === 'model'
                ? String(c.model)
                : String(c.conversation_id);
          for (const row of report.usage) {
            const group = mine.filter((c) => keyOf(c) === row.key);
            expect(row.requests).toBe(group.length);
            expect(row.total_tokens).toBe(group.reduce((sum, c) => sum + (c.usage as Usage).total_tokens, 0));
            expect(nano(row.cost)).toBe(group.reduce((sum, c) => sum + nano((c.usage as Usage).cost!), 0));
          }
          expect(report.total.requests).toBe(10);
        }
      }
    };
    for (const callback of callbackOf.values()) expect((callback.usage as Usage).cost).toBeGreaterThan(0);
    await expectReports([apiA.url, apiB.url]);
    await Promise.all([apiA.kill('SIGTERM'), apiB.kill('SIGTERM'), worker.kill('SIGTERM')]);
    const again = await start('all', env);
    await expectReports([again.url]);
  });

  it('a budget is shared by every API process', async () => {
    const run = await freshRun();
    const env = run.env({ API_TOKENS: `${TOKEN_A},${TOKEN_B}`, CLIENT_BUDGET: '200 tokens/day' });
    const [apiA, apiB] = await Promise.all([start('api', env), start('api', env), start('worker', env)]);
    const message = 'budget '.repeat(60);
    const first = await postWebhook(apiA.url, { message, callback_url: `${receiver.url}/b` }, asA);
    expect(first.status).toBe(200);
    await deliveredAll([first.json.task_id as string]);
    const refusedA = await postWebhook(apiA.url, { message, callback_url: `${receiver.url}/b` }, asA);
    const refusedB = await postWebhook(apiB.url, { message, callback_url: `${receiver.url}/b` }, asA);
    expect([refusedA.status, refusedB.status]).toEqual([429, 429]);
    expect(refusedB.json.detail).toBe('Budget exceeded: 200 tokens/day');
    expect((await postWebhook(apiB.url, { message, callback_url: `${receiver.url}/b` }, asB)).status).toBe(
      200,
    );
  });
});
