import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { llmFailure } from '../../test/support/llm-failure.js';
import { waitFor } from '../dev/harness.js';
import { type MockLlm, startMockLlm } from '../dev/mock-llm.js';
import { createLlmClient, type LlmClient } from './llm-client.js';

const API_KEY = 'sk-test-key';

let mock: MockLlm;
let llm: LlmClient;

beforeAll(async () => {
  mock = await startMockLlm({ apiKey: API_KEY });
  llm = createLlmClient({ baseUrl: mock.url, apiKey: API_KEY, timeoutMs: 10_000 });
});

afterAll(async () => {
  llm.close?.();
  await mock.close();
});

beforeEach(() => {
  mock.reset();
});

const ask = (client: LlmClient = llm, signal?: AbortSignal) =>
  client.complete(
    {
      model: 'test/model',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'What is 2+2?' },
      ],
    },
    signal,
  );

describe('createLlmClient', () => {
  it('returns the reply, the model and the usage, sending the messages and the key', async () => {
    const result = await ask();
    expect(result).toEqual({
      reply: 'Reply #2 to "What is 2+2?" (saw 4 messages)',
      model: 'test/model',
      usage: {
        prompt_tokens: expect.any(Number),
        completion_tokens: expect.any(Number),
        total_tokens: expect.any(Number),
        cached_tokens: expect.any(Number),
        reasoning_tokens: 0,
        cost: expect.any(Number),
      },
    });
    expect(result.usage!.total_tokens).toBe(result.usage!.prompt_tokens + result.usage!.completion_tokens);
    expect(mock.requests).toHaveLength(1);
    expect(mock.requests[0]!.model).toBe('test/model');
    expect(mock.requests[0]!.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(mock.requests[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(result.usage!.cost).toBeCloseTo(result.usage!.total_tokens / 1_000_000, 12);
    expect(mock.requests[0]).not.toHaveProperty('temperature');
  });

  it('sends temperature and max_tokens when given', async () => {
    mock.reset();
    const client = createLlmClient({ baseUrl: mock.url, apiKey: API_KEY, timeoutMs: 5000 });
    await client.complete({
      model: 'test/model',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 0.7,
      max_tokens: 33,
    });
    expect(mock.requests[0]).toMatchObject({ temperature: 0.7, max_tokens: 33 });
  });

  it('types a context-length refusal as llm_context_length, not retried', async () => {
    mock.reset();
    mock.script([
      {
        status: 400,
        body: {
          error: {
            message: "This model's maximum context length is 10 tokens.",
            type: 'invalid_request_error',
            code: 'context_length_exceeded',
          },
        },
      },
    ]);
    const client = createLlmClient({ baseUrl: mock.url, apiKey: API_KEY, timeoutMs: 5000 });
    const error = await client
      .complete({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e) => e);
    expect(error).toMatchObject({ type: 'llm_context_length', retryable: false, status: 400 });
  });

  it('reports the model the endpoint says answered, and no usage when there is none', async () => {
    mock.script([
      {
        status: 200,
        body: {
          id: 'x',
          object: 'chat.completion',
          created: 1,
          model: 'router/picked',
          choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        },
      },
    ]);
    expect(await ask()).toEqual({ reply: 'ok', model: 'router/picked', usage: null });
  });

  it.each([
    [401, 'llm_auth', false],
    [403, 'llm_auth', false],
    [400, 'llm_bad_request', false],
    [404, 'llm_bad_request', false],
    [422, 'llm_bad_request', false],
    [408, 'llm_unavailable', true],
    [429, 'llm_rate_limited', true],
    [500, 'llm_unavailable', true],
    [502, 'llm_unavailable', true],
    [503, 'llm_unavailable', true],
  ] as const)('translates HTTP %i into %s (retryable: %s), in one attempt', async (status, type, retryable) => {
    mock.script([{ status }]);
    const error = await llmFailure(ask());
    expect(error).toMatchObject({ type, retryable, status, code: type.toUpperCase() });
    expect(error.message).toMatch(String(status));
    expect(mock.requests).toHaveLength(1);
  });

  it('says to check the key on an auth failure, without showing it', async () => {
    const wrong = createLlmClient({ baseUrl: mock.url, apiKey: 'sk-wrong-secret', timeoutMs: 2_000 });
    const error = await llmFailure(ask(wrong));
    expect(error.type).toBe('llm_auth');
    expect(error.message).toMatch(/API_KEY/);
    expect(error.message).not.toMatch(/sk-wrong-secret/);
  });

  it('reads Retry-After in seconds and retry-after-ms', async () => {
    mock.script([
      { status: 429, headers: { 'retry-after': '3' } },
      { status: 503, headers: { 'retry-after-ms': '250', 'retry-after': '9' } },
      { status: 500 },
    ]);
    expect(await llmFailure(ask())).toMatchObject({ type: 'llm_rate_limited', retryAfterMs: 3_000 });
    expect(await llmFailure(ask())).toMatchObject({ type: 'llm_unavailable', retryAfterMs: 250 });
    expect((await llmFailure(ask())).retryAfterMs).toBeUndefined();
  });

  it('turns a slow answer into a retryable timeout', async () => {
    const quick = createLlmClient({ baseUrl: mock.url, apiKey: API_KEY, timeoutMs: 200 });
    mock.script([{ status: 200, delayMs: 5_000 }]);
    expect(await llmFailure(ask(quick))).toMatchObject({ type: 'llm_timeout', retryable: true });
    expect(mock.requests).toHaveLength(1);
  });

  it('turns an unreachable endpoint into a retryable network error', async () => {
    const gone = await startMockLlm();
    await gone.close();
    const client = createLlmClient({ baseUrl: gone.url, apiKey: API_KEY, timeoutMs: 2_000 });
    expect(await llmFailure(ask(client))).toMatchObject({ type: 'llm_network', retryable: true });
  });

  it('turns a cancelled call into a retryable llm_aborted', async () => {
    mock.script([{ status: 200, delayMs: 5_000 }]);
    const controller = new AbortController();
    const pending = llmFailure(ask(llm, controller.signal));
    await waitFor(() => mock.requests.length > 0, 'the request to reach the mock', { timeoutMs: 5_000 });
    controller.abort();
    expect(await pending).toMatchObject({ type: 'llm_aborted', retryable: true });
  });

  it.each([
    ['no choices', { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [] }],
    [
      'empty content',
      {
        id: 'x',
        object: 'chat.completion',
        created: 1,
        model: 'm',
        choices: [{ index: 0, message: { role: 'assistant', content: '' } }],
      },
    ],
    [
      'null content',
      {
        id: 'x',
        object: 'chat.completion',
        created: 1,
        model: 'm',
        choices: [{ index: 0, message: { role: 'assistant', content: null } }],
      },
    ],
    ['a body that is not JSON', '{"choices": ['],
  ])('turns a 200 with %s into a retryable llm_bad_response', async (_name, body) => {
    mock.script([{ status: 200, body }]);
    expect(await llmFailure(ask())).toMatchObject({ type: 'llm_bad_response', retryable: true });
  });

  it('sends calls one after another over one kept-alive connection, which close() drops', async () => {
    let connections = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-request-id', 'req-1');
        res.end(
          JSON.stringify({
            id: 'x',
            object: 'chat.completion',
            created: 1,
            model: 'kept/alive',
            choices: [{ index: 0, message: { role: 'assistant', content: 'yes' }, finish_reason: 'stop' }],
          }),
        );
      });
    });
    server.on('connection', () => {
      connections++;
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const client = createLlmClient({
      baseUrl: `http://127.0.0.1:${port}/v1`,
      apiKey: API_KEY,
      timeoutMs: 5_000,
    });
    try {
      for (let call = 0; call < 5; call++) {
        expect(await ask(client)).toEqual({ reply: 'yes', model: 'kept/alive', usage: null });
        // The pool frees a connection once the answer is complete, a turn after the body was read.
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(connections).toBe(1);
      client.close?.();
      expect(await llmFailure(ask(client))).toMatchObject({ type: 'llm_network', retryable: true });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('fails every call without a key, permanently and without calling the endpoint', async () => {
    const keyless = createLlmClient({ baseUrl: mock.url, apiKey: null, timeoutMs: 2_000 });
    const error = await llmFailure(ask(keyless));
    expect(error).toMatchObject({ type: 'config_missing_api_key', retryable: false });
    expect(error.message).toMatch(/API_KEY/);
    expect(mock.requests).toHaveLength(0);
  });
});
