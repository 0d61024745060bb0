import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
