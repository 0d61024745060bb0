import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CallbackReceiver, startCallbackReceiver } from '../../test/support/callback-receiver.js';
import { llmFailure } from '../../test/support/llm-failure.js';
import { loadConfig } from '../config.js';
import { type MockLlm, startMockLlm } from '../dev/mock-llm.js';
import { createLogger } from '../shared/logger.js';
import { type Outbound, outboundSettings } from './outbound-calls.js';
import { createOutboundClient } from './outbound-client.js';

const API_KEY = 'sk-thread-test';

let mock: MockLlm;
let receiver: CallbackReceiver;
let outbound: Outbound;

const start = (env: Record<string, string> = {}): Outbound =>
  createOutboundClient({
    settings: outboundSettings(
      loadConfig({
        LLM_BASE_URL: mock.url,
        API_KEY,
        CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
        LOG_LEVEL: 'silent',
        ...env,
      }),
      'llm-webhook-test',
    ),
    logger: createLogger('silent'),
  });

const ask = (thread: Outbound = outbound) =>
  thread.llm.complete({ model: 'test-model', messages: [{ role: 'user', content: 'Hello' }] });

beforeAll(async () => {
  mock = await startMockLlm({ apiKey: API_KEY });
  receiver = await startCallbackReceiver();
  outbound = start();
});

afterAll(async () => {
  await outbound.close();
  await receiver.close();
  await mock.close();
});

beforeEach(() => {
  mock.reset();
  receiver.reset();
});

describe('the outbound thread', () => {
  it('makes LLM calls and returns the completion', async () => {
    const replies = await Promise.all([ask(), ask(), ask()]);
    expect(replies).toHaveLength(3);
    for (const reply of replies) {
      expect(reply.reply).toContain('Hello');
      expect(reply.model).toBe('test-model');
      expect(reply.usage?.total_tokens).toBeGreaterThan(0);
    }
    expect(mock.requests).toHaveLength(3);
    expect(mock.requests[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it('rejects with the same LlmError as in-process: type, retry decision, status, Retry-After', async () => {
    mock.script([
      { status: 401, body: { error: { message: 'bad key' } } },
      { status: 429, body: { error: { message: 'slow down' } }, headers: { 'retry-after': '7' } },
    ]);
    const auth = await llmFailure(ask());
    expect(auth).toMatchObject({ type: 'llm_auth', retryable: false, status: 401, code: 'LLM_AUTH' });
    const limited = await llmFailure(ask());
    expect(limited).toMatchObject({ type: 'llm_rate_limited', retryable: true, retryAfterMs: 7000 });
  });

  it('cancels a call through its AbortSignal', async () => {
    mock.setLatency(5000);
    const controller = new AbortController();
    const call = outbound.llm.complete(
      { model: 'test-model', messages: [{ role: 'user', content: 'slow' }] },
      controller.signal,
    );
    setTimeout(() => controller.abort(), 100);
    expect(await llmFailure(call)).toMatchObject({ type: 'llm_aborted', retryable: true });
  });

  it('delivers callbacks with their headers, and applies the SSRF policy in the thread', async () => {
    const outcome = await outbound.sender.send(`${receiver.url}/hook`, '{"a":1}', { 'webhook-id': 'id-1' });
    expect(outcome).toMatchObject({ type: 'delivered', statusCode: 200 });
    const [callback] = await receiver.waitFor(1);
    expect(callback?.body).toBe('{"a":1}');
    expect(callback?.headers['webhook-id']).toBe('id-1');
    expect(callback?.headers['user-agent']).toBe('llm-webhook-test');

    const refused = await outbound.sender.send('http://localhost:9/hook', '{}', {});
    expect(refused.type).toBe('failed');
    expect(receiver.received).toHaveLength(1);
  });

  it('ends calls still running at a close past its timeout as retryable failures', async () => {
    const thread = start();
    mock.setLatency(5000);
    const call = ask(thread);
    const delivery = thread.sender.send(`${receiver.url}/late`, '{}', {});
    // Let both reach the thread before it is stopped.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await thread.close(50);
    expect(await llmFailure(call)).toMatchObject({ type: 'llm_network', retryable: true });
    // The callback answered already, or was cut short: never a failure that ends the task.
    expect(['delivered', 'retry']).toContain((await delivery).type);
    expect((await thread.sender.send(`${receiver.url}/after`, '{}', {})).type).toBe('retry');
    expect(await llmFailure(ask(thread))).toMatchObject({ retryable: true });
  });
});
