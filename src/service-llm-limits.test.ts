/** The whole service in one process against the mock LLM: the context budget and the provider limits (SPEC §10). */
import { describe, expect, it } from 'vitest';
import { waitForTask } from '../test/support/in-process-app.js';
import { waitFor } from './dev/harness.js';
import { promptTokens, tokenCounterFor } from './llm/token-count.js';
import { accept, capturingLogger, useLlmSuite } from './service-llm.test-support.js';

const WINDOW = 8192;
const { llm, receiver, startApp } = useLlmSuite({ contextWindowTokens: WINDOW });

/** A text of about `chars` characters of varied words, numbered so that no two are alike. */
function longText(n: number, chars: number): string {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  let text = `#${n}:`;
  for (let i = 0; text.length < chars; i += 1) text += ` ${words[(i * 7 + n) % words.length]}${i % 13}`;
  return text.slice(0, chars);
}

describe('context budget', () => {
  it('completes a conversation of 60 messages of 2,000 characters in an 8,192-token window, keeping the newest exchanges', async () => {
    const budget = 6000;
    const { url } = await startApp({
      LLM_MODEL: 'openai/gpt-4',
      HISTORY_MAX_TOKENS: String(budget),
      HISTORY_MAX_MESSAGES: '200',
    });
    const messages = Array.from({ length: 60 }, (_, n) => longText(n, 2000));
    for (const [n, message] of messages.entries()) {
      const id = await accept(url, {
        message,
        callback_url: `${receiver.url}/long`,
        conversation_id: 'long',
      });
      const task = await waitForTask(url, id, ['completed', 'failed']);
      expect(task.status, `message ${n}: ${JSON.stringify(task.error)}`).toBe('completed');
    }
    expect(llm.requests).toHaveLength(60);
    const counter = await tokenCounterFor('openai/gpt-4');
    let trimmed = 0;
    for (const [n, request] of llm.requests.entries()) {
      // Within the budget, by the service's count and by the mock's.
      expect(request.promptTokens).toBeLessThanOrEqual(budget);
      expect(promptTokens(counter, request.messages)).toBe(request.promptTokens);
      const users = request.messages.filter((m) => m.role === 'user').map((m) => m.content);
      // The new message last, after a contiguous run of the newest earlier ones, whole exchanges.
      expect(users.at(-1)).toBe(messages[n]);
      expect(users).toEqual(messages.slice(n + 1 - users.length, n + 1));
      expect(request.messages.map((m) => m.role)).toEqual([
        ...Array.from({ length: users.length - 1 }, () => ['user', 'assistant']).flat(),
        'user',
      ]);
      if (users.length < n + 1) trimmed += 1;
    }
    expect(trimmed).toBeGreaterThan(40);
    // The stored history is untouched by trimming.
    const stored = (await (await fetch(`${url}/conversations/long/messages`)).json()) as {
      messages: unknown[];
    };
    expect(stored.messages).toHaveLength(120);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/llm_webhook_history_dropped_messages_total [1-9]\d*/);
  });

  it('retries a context-length refusal once with half the history, then fails as llm_context_length', async () => {
    // The service's budget is larger than this model's real window: the provider refuses.
    const { url } = await startApp({ HISTORY_MAX_TOKENS: '0', HISTORY_MAX_MESSAGES: '200' });
    for (let n = 0; n < 6; n += 1) {
      const id = await accept(url, {
        message: longText(n, 1500),
        callback_url: `${receiver.url}/h`,
        conversation_id: 'half',
      });
      await waitForTask(url, id, ['completed']);
    }
    llm.reset();
    llm.script([{ status: 400, body: { error: { message: 'too long', code: 'context_length_exceeded' } } }]);
    const id = await accept(url, {
      message: 'next',
      callback_url: `${receiver.url}/h`,
      conversation_id: 'half',
    });
    const task = await waitForTask(url, id, ['completed']);
    expect(task.attempts.llm).toBe(2);
    const [refused, retried] = llm.requests;
    expect(refused!.messages).toHaveLength(13);
    // The newest three of six exchanges, and the new message.
    expect(retried!.messages).toHaveLength(7);
    expect(retried!.messages).toEqual(refused!.messages.slice(6));

    // A prompt that cannot fit at all: refused twice, then failed with a type of its own.
    llm.script([
      { status: 400, body: { error: { message: 'too long', code: 'context_length_exceeded' } } },
      { status: 400, body: { error: { message: 'too long', code: 'context_length_exceeded' } } },
    ]);
    const failed = await waitForTask(
      url,
      await accept(url, { message: 'again', callback_url: `${receiver.url}/h`, conversation_id: 'half' }),
      ['failed'],
    );
    expect(failed.error?.type).toBe('llm_context_length');
  });
});

describe('provider limits', () => {
  it('keeps LLM calls in flight within LLM_MAX_CONCURRENCY, completing every task', async () => {
    const { url } = await startApp({ LLM_MAX_CONCURRENCY: '3', WORKER_CONCURRENCY: '50' });
    llm.setLatency(40);
    const ids = await Promise.all(
      Array.from({ length: 30 }, (_, n) =>
        accept(url, { message: `m${n}`, callback_url: `${receiver.url}/c${n}` }),
      ),
    );
    for (const id of ids) await waitForTask(url, id, ['completed']);
    expect(llm.maxInFlight).toBeLessThanOrEqual(3);
    expect(llm.maxInFlight).toBeGreaterThan(1);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/llm_webhook_llm_waits_total\{reason="concurrency"\} [1-9]/);
  });

  it('pauses the model for every call after a 429 with Retry-After, failing no task and spending no retry while waiting', async () => {
    const { logger, lines } = capturingLogger();
    const { url } = await startApp(
      { LLM_RETRY_SCHEDULE: '50ms', WORKER_CONCURRENCY: '50' },
      undefined,
      logger,
    );
    llm.rateLimit(2000, 2);
    const first = await accept(url, { message: 'first', callback_url: `${receiver.url}/p0` });
    const pausedAt = await waitFor(() => llm.rateLimitedAt, 'the first 429');
    // The service has paused the model once it logs the retry of that call.
    await waitFor(
      () =>
        lines.some(
          (line) => line.msg === 'LLM call failed; retrying' && line.err_type === 'llm_rate_limited',
        ),
      'the service to pause the model',
    );
    // Sent while the model is paused: none of them may reach the provider before the pause ends.
    const ids = await Promise.all(
      Array.from({ length: 10 }, (_, n) =>
        accept(url, { message: `m${n}`, callback_url: `${receiver.url}/p${n + 1}` }),
      ),
    );
    for (const id of [first, ...ids]) {
      const task = await waitForTask(url, id, ['completed', 'failed']);
      expect(task.status).toBe('completed');
      // The first task's 429 is its one call besides the answer; the others waited without calling.
      expect(task.attempts.llm).toBe(id === first ? 2 : 1);
    }
    const during = llm.requests.filter((r) => r.receivedAt > pausedAt && r.receivedAt < pausedAt + 2000);
    expect(during).toEqual([]);
    expect(llm.requests.filter((r) => r.status === 429)).toHaveLength(1);
  });

  it('spreads calls over LLM_RATE_LIMIT, completing every task', async () => {
    const { url } = await startApp({ LLM_RATE_LIMIT: '5/second', LLM_TOKEN_RATE_LIMIT: '100000/minute' });
    const ids = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        accept(url, { message: `r${n}`, callback_url: `${receiver.url}/r${n}` }),
      ),
    );
    for (const id of ids) expect((await waitForTask(url, id, ['completed'])).attempts.llm).toBe(1);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/llm_webhook_llm_waits_total\{reason="requests"\} [1-9]/);
  });
});
