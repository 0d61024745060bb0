/** The whole service in one process against the mock LLM: per-request options, usage and cost, budgets (SPEC §10). */
import { describe, expect, it } from 'vitest';
import type { TaskView } from '../test/support/in-process-app.js';
import { waitForTask } from '../test/support/in-process-app.js';
import {
  accept,
  asA,
  asB,
  getJson,
  PRICED,
  send,
  TOKEN_A,
  TOKEN_B,
  UNPRICED,
  useLlmSuite,
} from './service-llm.test-support.js';

const { llm, receiver, startApp, dataDir } = useLlmSuite();

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost?: number;
}
interface UsageReport {
  usage: Array<{
    key: string;
    requests: number;
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    cost: number;
  }>;
  total: { requests: number; total_tokens: number; cost: number };
}

const nano = (usd: number): number => Math.round(usd * 1e9);

describe('per-request options', () => {
  it('answers with an allowed model, sends temperature and max_tokens, and refuses another model', async () => {
    const { url } = await startApp({ LLM_FALLBACK_MODELS: 'mock/fallback', LLM_MODELS_ALLOWED: UNPRICED });
    const id = await accept(url, {
      message: 'hi',
      callback_url: `${receiver.url}/options`,
      options: { model: UNPRICED, temperature: 0.25, max_tokens: 64, unknown: true },
    });
    const task = await waitForTask(url, id, ['completed']);
    expect(task.model).toBe(UNPRICED);
    expect(llm.requests.at(-1)).toMatchObject({ model: UNPRICED, temperature: 0.25, max_tokens: 64 });
    const callback = await receiver.waitFor((entry) => entry.json?.task_id === id);
    expect(callback.json?.model).toBe(UNPRICED);

    const refused = await send(url, {
      message: 'hi',
      callback_url: `${receiver.url}/x`,
      options: { model: 'other/model' },
    });
    expect(refused.status).toBe(422);
    expect(refused.json.detail).toEqual([
      expect.objectContaining({
        type: 'literal_error',
        loc: ['body', 'options', 'model'],
        ctx: { expected: `'${PRICED}', 'mock/fallback' or '${UNPRICED}'` },
      }),
    ]);
  });

  it('falls back along LLM_FALLBACK_MODELS from the model asked for', async () => {
    const { url } = await startApp({
      LLM_FALLBACK_MODELS: 'mock/fallback',
      LLM_MODELS_ALLOWED: UNPRICED,
      LLM_RETRY_SCHEDULE: '10ms',
    });
    llm.script([{ status: 503 }, { status: 503 }]);
    const id = await accept(url, {
      message: 'hi',
      callback_url: `${receiver.url}/fb`,
      options: { model: UNPRICED },
    });
    const task = await waitForTask(url, id, ['completed']);
    expect(llm.requests.map((request) => request.model)).toEqual([UNPRICED, UNPRICED, 'mock/fallback']);
    expect(task).toMatchObject({ model: 'mock/fallback', attempts: { llm: 3 } });
  });
});

describe('usage and cost', () => {
  it('shows usage and cost in every callback and task, and GET /usage sums them exactly, before and after a restart', async () => {
    const dir = dataDir();
    const env = {
      API_TOKENS: `${TOKEN_A},${TOKEN_B}`,
      LLM_MODELS_ALLOWED: UNPRICED,
      LLM_PRICES: `${UNPRICED}=3/7`,
    };
    const first = await startApp(env, dir);
    const sent: Array<{ id: string; client: 'a' | 'b' }> = [];
    for (let n = 0; n < 20; n += 1) {
      const client = n % 2 === 0 ? 'a' : 'b';
      const id = await accept(
        first.url,
        {
          message: `message ${n} ${'word '.repeat(n)}`,
          callback_url: `${receiver.url}/usage`,
          conversation_id: `conv-${n % 4}`,
          options: { model: n % 3 === 0 ? UNPRICED : PRICED },
        },
        client === 'a' ? asA : asB,
      );
      sent.push({ id, client });
    }
    await receiver.waitUntil((all) =>
      sent.every(({ id }) => all.some((entry) => entry.json?.task_id === id)),
    );
    const callbacks = new Map(receiver.received.map((entry) => [entry.json?.task_id as string, entry.json!]));
    for (const { id, client } of sent) {
      const callback = callbacks.get(id)!;
      const usage = callback.usage as Usage;
      const task = await getJson<TaskView>(first.url, `/tasks/${id}`, client === 'a' ? asA : asB);
      expect(task.usage).toEqual(usage);
      expect(task.model).toBe(callback.model);
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
      // The provider's own cost when it sends one, else LLM_PRICES.
      const expected =
        callback.model === UNPRICED
          ? (usage.prompt_tokens * 3 + usage.completion_tokens * 7) / 1e6
          : (usage.total_tokens * 2) / 1e6;
      expect(nano(usage.cost!)).toBe(nano(expected));
    }

    const expectReports = async (base: string) => {
      for (const [client, headers] of [
        ['a', asA],
        ['b', asB],
      ] as const) {
        const mine = sent.filter((entry) => entry.client === client).map(({ id }) => callbacks.get(id)!);
        const sum = (pick: (c: Record<string, unknown>) => number, of = mine) =>
          of.reduce((total, c) => total + pick(c), 0);
        const tokens = (c: Record<string, unknown>) => (c.usage as Usage).total_tokens;
        const cost = (c: Record<string, unknown>) => nano((c.usage as Usage).cost!);
        for (const groupBy of ['day', 'model', 'conversation'] as const) {
          const report = await getJson<UsageReport>(base, `/usage?group_by=${groupBy}`, headers);
          const keyOf = (c: Record<string, unknown>) =>
            groupBy === 'day'
              ? String(c.completed_at).slice(0, 10)
              : groupBy === 'model'
                ? String(c.model)
                : String(c.conversation_id);
          const keys = [...new Set(mine.map(keyOf))].sort();
          expect(report.usage.map((row) => row.key)).toEqual(keys);
          for (const row of report.usage) {
            const group = mine.filter((c) => keyOf(c) === row.key);
            expect(row.requests).toBe(group.length);
            expect(row.total_tokens).toBe(sum(tokens, group));
            expect(row.prompt_tokens).toBe(sum((c) => (c.usage as Usage).prompt_tokens, group));
            expect(nano(row.cost)).toBe(sum(cost, group));
          }
          expect(report.total.requests).toBe(10);
          expect(report.total.total_tokens).toBe(sum(tokens));
          expect(nano(report.total.cost)).toBe(sum(cost));
        }
      }
    };
    await expectReports(first.url);
    const metrics = await (await fetch(`${first.url}/metrics`, { headers: asA })).text();
    expect(metrics).toMatch(
      new RegExp(`llm_webhook_llm_tokens_total\\{model="${UNPRICED}",kind="prompt"\\} [1-9]`),
    );
    expect(metrics).toMatch(new RegExp(`llm_webhook_llm_cost_usd_total\\{model="${PRICED}"\\} 0\\.0`));
    await first.close();

    const second = await startApp(env, dir);
    await expectReports(second.url);
    const empty = await getJson<UsageReport>(second.url, '/usage?since=2000-01-01&until=2000-01-31', asA);
    expect(empty).toEqual({
      usage: [],
      total: { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost: 0 },
    });
    expect((await send(second.url, {}, asA)).status).toBe(422);
    expect((await fetch(`${second.url}/usage?since=yesterday`, { headers: asA })).status).toBe(422);
  });
});

describe('budgets', () => {
  it('refuses a client over CLIENT_BUDGET with 429 until the day ends, not the other, across a restart', async () => {
    const dir = dataDir();
    const env = { API_TOKENS: `${TOKEN_A},${TOKEN_B}`, CLIENT_BUDGET: '1000 tokens/day' };
    const first = await startApp(env, dir);
    const message = 'budget '.repeat(60);
    let refused: Awaited<ReturnType<typeof send>> | null = null;
    for (let n = 0; n < 40 && refused === null; n += 1) {
      const answer = await send(
        first.url,
        { message, callback_url: `${receiver.url}/budget`, conversation_id: `b${n}` },
        asA,
      );
      if (answer.status === 429) refused = answer;
      else {
        expect(answer.status).toBe(200);
        await waitForTask(first.url, answer.json.task_id as string, ['completed'], asA);
      }
    }
    expect(refused).not.toBeNull();
    expect(refused!.json).toEqual({ detail: 'Budget exceeded: 1000 tokens/day' });
    const retryAfter = Number(refused!.headers.get('retry-after'));
    const endOfDay = Date.UTC(
      new Date().getUTCFullYear(),
      new Date().getUTCMonth(),
      new Date().getUTCDate() + 1,
    );
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((endOfDay - Date.now()) / 1000) + 1);
    const report = await getJson<UsageReport>(first.url, '/usage', asA);
    expect(report.total.total_tokens).toBeLessThanOrEqual(1000);
    expect((await send(first.url, { message, callback_url: `${receiver.url}/budget` }, asB)).status).toBe(
      200,
    );
    // One huge request cannot slip under the budget: its estimate alone is over it.
    expect(
      (await send(first.url, { message: 'x'.repeat(3100), callback_url: `${receiver.url}/budget` }, asB))
        .status,
    ).toBe(429);
    await first.close();

    const second = await startApp(env, dir);
    expect((await send(second.url, { message, callback_url: `${receiver.url}/budget` }, asA)).status).toBe(
      429,
    );
    expect(
      (await send(second.url, { message: 'short', callback_url: `${receiver.url}/budget` }, asB)).status,
    ).toBe(200);
  });
});
