/**
 * `OUTBOUND_THREAD` moves LLM calls and callbacks to a thread of their own; it must change
 * nothing a provider or a receiver sees. The same tasks run with it on and off, and what reached
 * the mock LLM and the callback receiver is compared.
 */
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { postWebhook, startTestApp, useUpstreams } from '../test/support/in-process-app.js';

const SECRET = `whsec_${Buffer.from('the outbound-thread test secret!').toString('base64')}`;
const API_KEY = 'sk-outbound-thread-test-key-0123456789';

const { llm, receiver } = useUpstreams();

interface Seen {
  llm: Array<Record<string, unknown>>;
  callbacks: Array<Record<string, unknown>>;
}

async function runTasks(outboundThread: 'on' | 'off'): Promise<Seen> {
  llm.reset();
  receiver.reset();
  const app = await startTestApp({
    OUTBOUND_THREAD: outboundThread,
    API_KEY,
    LLM_BASE_URL: llm.url,
    LLM_MODEL: 'mock/primary',
    LLM_FALLBACK_MODELS: 'mock/fallback',
    LLM_RETRY_SCHEDULE: '20ms',
    CALLBACK_RETRY_SCHEDULE: '20ms',
    CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    WEBHOOK_SECRET: SECRET,
  });
  // The first task is answered by the fallback after the primary's 503s; the second fails on a
  // 401 that echoes the key back; the receiver turns the first callback away once.
  llm.script([
    { status: 503 },
    { status: 503 },
    { status: 200 },
    { status: 401, body: { error: { message: `Incorrect API key provided: ${API_KEY}`, type: 'auth' } } },
  ]);
  receiver.script([500]);
  const ids: string[] = [];
  for (const message of ['first', 'second']) {
    const { status, json } = await postWebhook(app.url, {
      message,
      callback_url: `${receiver.url}/thread`,
      conversation_id: `thread-${outboundThread}`,
      metadata: { n: message },
    });
    expect(status).toBe(200);
    ids.push(json.task_id as string);
    await receiver.waitUntil(
      (all) => all.some((entry) => entry.json?.task_id === json.task_id && entry.status === 200),
      20_000,
    );
  }
  const verifier = new Webhook(SECRET);
  const byTask = new Map(ids.map((id, index) => [id, `task-${index}`]));
  return {
    llm: llm.requests.map((request) => ({
      model: request.model,
      messages: request.messages,
      authorization: request.headers.authorization,
      contentType: request.headers['content-type'],
    })),
    callbacks: receiver.received.map((entry) => {
      const payload = verifier.verify(entry.body, {
        'webhook-id': entry.headers['webhook-id'] as string,
        'webhook-timestamp': entry.headers['webhook-timestamp'] as string,
        'webhook-signature': entry.headers['webhook-signature'] as string,
      }) as Record<string, unknown>;
      return {
        task: byTask.get(entry.headers['webhook-id'] as string),
        answered: entry.status,
        userAgent: entry.headers['user-agent'],
        contentType: entry.headers['content-type'],
        status: payload.status,
        model: payload.model,
        error: payload.error,
        metadata: payload.metadata,
        reply: payload.generated_response,
      };
    }),
  };
}

describe('OUTBOUND_THREAD', () => {
  it('changes nothing the LLM provider or the callback receiver sees', async () => {
    const on = await runTasks('on');
    const off = await runTasks('off');
    // The conversation ids differ by design; the prompts hold none of them.
    expect(on).toEqual(off);
    expect(on.llm.map((request) => request.model)).toEqual([
      'mock/primary',
      'mock/primary',
      'mock/fallback',
      'mock/primary',
    ]);
    expect(on.llm.every((request) => request.authorization === `Bearer ${API_KEY}`)).toBe(true);
    expect(on.callbacks.map((callback) => [callback.task, callback.answered, callback.status])).toEqual([
      ['task-0', 500, 'completed'],
      ['task-0', 200, 'completed'],
      ['task-1', 200, 'failed'],
    ]);
    expect(on.callbacks[0]!.userAgent).toMatch(/^llm-webhook\/\d/);
    expect(on.callbacks[0]!.model).toBe('mock/fallback');
    expect(JSON.stringify(on.callbacks)).not.toContain(API_KEY);
  });
});
