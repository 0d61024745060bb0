import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { type MockLlm, mockReplyText, startMockLlm } from './mock-llm.js';

const complete = (url: string, body: unknown, token: string | null = 'k') =>
  fetch(`${url}/chat/completions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  });

const request = (content: string) => ({ model: 'm', messages: [{ role: 'user', content }] });

describe('startMockLlm', () => {
  let mock: MockLlm;
  beforeAll(async () => {
    mock = await startMockLlm({ maxRecorded: 5 });
  });
  afterAll(async () => {
    await mock.close();
  });

  it('answers with a deterministic reply and usage', async () => {
    mock.reset();
    const response = await complete(mock.url, {
      model: 'm',
      messages: [
        { role: 'user', content: 'one' },
        { role: 'assistant', content: 'a' },
        { role: 'user', content: 'two words' },
      ],
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      model: string;
      choices: { message: { content: string } }[];
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    };
    expect(body.model).toBe('m');
    expect(body.choices[0]?.message.content).toBe('Reply #2 to "two words" (saw 3 messages)');
    expect(body.usage.prompt_tokens).toBe(4);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it('refuses a missing bearer token, other paths and malformed bodies', async () => {
    expect((await complete(mock.url, request('x'), null)).status).toBe(401);
    expect((await fetch(`${mock.url}/models`)).status).toBe(404);
    expect((await fetch(`${mock.url}/chat/completions`)).status).toBe(405);
    expect((await complete(mock.url, { model: 'm' })).status).toBe(400);
  });

  it('uses scripted answers one per request, then the default', async () => {
    mock.reset();
    mock.script([
      { status: 429, headers: { 'retry-after': '2' } },
      { status: 200, body: { custom: true } },
    ]);
    const first = await complete(mock.url, request('a'));
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('2');
    expect(((await first.json()) as { error: { message: string } }).error.message).toMatch(/429/);
    expect(await (await complete(mock.url, request('b'))).json()).toEqual({ custom: true });
    expect((await complete(mock.url, request('c'))).status).toBe(200);
  });

  it('keeps only the newest requests, and forgets them on reset', async () => {
    mock.reset();
    for (let i = 1; i <= 7; i++) await complete(mock.url, request(`m${i}`));
    expect(mock.requests.map((r) => r.messages[0]?.content)).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
    mock.reset();
    expect(mock.requests).toHaveLength(0);
  });

  it('serves many concurrent requests with latency', async () => {
    mock.reset();
    mock.setLatency(200);
    try {
      const responses = await Promise.all(
        Array.from({ length: 300 }, (_, i) => complete(mock.url, request(`q${i}`)).then((r) => r.json())),
      );
      const replies = responses.map(
        (body) => (body as { choices: { message: { content: string } }[] }).choices[0]?.message.content,
      );
      expect(new Set(replies).size).toBe(300);
      expect(replies[42]).toBe(mockReplyText([{ role: 'user', content: 'q42' }]));
    } finally {
      mock.setLatency(0);
    }
  });

  it('records nothing when recording is off', async () => {
    const quiet = await startMockLlm({ record: false });
    try {
      expect((await complete(quiet.url, request('x'))).status).toBe(200);
      expect(quiet.requests).toHaveLength(0);
    } finally {
      await quiet.close();
    }
  });

  it('reports usage.cost, cached and reasoning tokens, and records temperature and max_tokens', async () => {
    mock.reset();
    const response = await complete(mock.url, { ...request('two words'), temperature: 0.5, max_tokens: 7 });
    const body = (await response.json()) as {
      usage: {
        total_tokens: number;
        cost: number;
        prompt_tokens_details: { cached_tokens: number };
        completion_tokens_details: { reasoning_tokens: number };
      };
    };
    expect(body.usage.cost).toBeCloseTo(body.usage.total_tokens / 1_000_000, 12);
    expect(body.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBe(0);
    expect(mock.requests[0]).toMatchObject({ temperature: 0.5, max_tokens: 7, status: 200 });
  });

  it('answers 429 with Retry-After during a rate-limited spell, and counts calls in flight', async () => {
    mock.reset();
    mock.rateLimit(60_000, 2);
    const limited = await complete(mock.url, request('a'));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    expect(mock.rateLimitedAt).not.toBeNull();
    mock.reset();
    mock.setLatency(100);
    try {
      const calls = Array.from({ length: 4 }, () => complete(mock.url, request('b')));
      const seen = await waitFor(() => (mock.inFlight === 4 ? mock.inFlight : null), 'four calls in flight');
      expect(seen).toBe(4);
      await Promise.all(calls);
      expect(mock.inFlight).toBe(0);
      expect(mock.maxInFlight).toBe(4);
    } finally {
      mock.setLatency(0);
    }
  });
});

describe('startMockLlm with a context window and per-model cost', () => {
  it("refuses a prompt over the window the way OpenAI does, and reports cost only where it's set", async () => {
    const mock = await startMockLlm({
      contextWindowTokens: 50,
      costPerMillionTokens: (model) => (model === 'priced' ? 2 : null),
    });
    try {
      const long = await complete(mock.url, {
        model: 'openai/gpt-4',
        messages: [{ role: 'user', content: 'word '.repeat(60) }],
      });
      expect(long.status).toBe(400);
      const error = ((await long.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('context_length_exceeded');
      expect(error.message).toMatch(/maximum context length is 50 tokens/);
      const reserved = await complete(mock.url, { ...request('short'), max_tokens: 49 });
      expect(reserved.status).toBe(400);
      const priced = (await (await complete(mock.url, { ...request('x'), model: 'priced' })).json()) as {
        usage: { cost?: number; total_tokens: number };
      };
      expect(priced.usage.cost).toBeCloseTo((priced.usage.total_tokens * 2) / 1_000_000, 12);
      const unpriced = (await (await complete(mock.url, request('x'))).json()) as {
        usage: { cost?: number };
      };
      expect(unpriced.usage.cost).toBeUndefined();
    } finally {
      await mock.close();
    }
  });
});
