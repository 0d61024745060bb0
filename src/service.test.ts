/**
 * The whole service in one process (embedded mode, a real SQLite file), against a real mock LLM
 * and a real callback receiver on 127.0.0.1: processing (SPEC §4) and delivery (SPEC §5).
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { startTestApp, useUpstreams, waitForTask } from '../test/support/in-process-app.js';

const SECRET = `whsec_${Buffer.from('a test secret of enough length!!').toString('base64')}`;

const { llm, receiver } = useUpstreams();

async function startApp(env: Record<string, string> = {}): Promise<string> {
  const app = await startTestApp({
    API_KEY: 'test-key',
    LLM_BASE_URL: llm.url,
    LLM_MODEL: 'mock/primary',
    LLM_RETRY_SCHEDULE: '50ms,50ms',
    CALLBACK_RETRY_SCHEDULE: '50ms,50ms,50ms',
    CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    ...env,
  });
  return app.url;
}

async function post(base: string, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${base}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(200);
  const json = (await response.json()) as { task_id: string; status: string };
  expect(json.status).toBe('Processing');
  return json.task_id;
}

describe('processing', () => {
  it('answers three messages of one conversation with 1, 3 and 5 messages in the prompt', async () => {
    const base = await startApp();
    const hook = `${receiver.url}/three`;
    for (const message of ['one', 'two', 'three']) {
      const id = await post(base, { message, callback_url: hook });
      await receiver.waitUntil((entries) => entries.some((entry) => entry.json?.task_id === id), 20_000);
    }
    expect(llm.requests.map((request) => request.messages.length)).toEqual([1, 3, 5]);
    const last = llm.requests[2]!.messages;
    expect(last.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
    expect(last.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['one', 'two', 'three']);
    expect(llm.requests[0]!.model).toBe('mock/primary');
  });

  it('puts SYSTEM_PROMPT first and keeps at most HISTORY_MAX_MESSAGES of history', async () => {
    const base = await startApp({ SYSTEM_PROMPT: 'Be brief.', HISTORY_MAX_MESSAGES: '2' });
    for (const message of ['a', 'b', 'c']) {
      const id = await post(base, { message, callback_url: `${receiver.url}/window` });
      await waitForTask(base, id, ['completed']);
    }
    const prompt = llm.requests[2]!.messages;
    expect(prompt[0]).toEqual({ role: 'system', content: 'Be brief.' });
    expect(prompt.slice(1).map((m) => m.content)[2]).toBe('c');
    expect(prompt).toHaveLength(1 + 2 + 1);
    expect(prompt[1]!.content).toBe('b');
  });

  it('answers a burst of six concurrent messages of one conversation in order, history growing', async () => {
    const base = await startApp();
    llm.setLatency(30);
    const ids = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) =>
        post(base, {
          message: `burst ${n}`,
          callback_url: `${receiver.url}/burst`,
          conversation_id: 'burst',
        }),
      ),
    );
    await receiver.waitUntil(
      (entries) => entries.filter((e) => e.json?.conversation_id === 'burst').length === 6,
      20_000,
    );
    const prompts = llm.requests.map((request) => request.messages);
    expect(prompts.map((messages) => messages.length)).toEqual([1, 3, 5, 7, 9, 11]);
    // Each prompt extends the one before: every earlier exchange is there, in the same order.
    for (let i = 1; i < prompts.length; i += 1) {
      expect(prompts[i]!.slice(0, prompts[i - 1]!.length)).toEqual(prompts[i - 1]);
    }
    // Each task's callback carries the reply made at its place in that order: the k-th answered
    // message saw 2k - 1 messages.
    const answered = prompts.map((messages) => messages.at(-1)!.content);
    const callbacks = receiver.received.filter((entry) => entry.json?.conversation_id === 'burst');
    expect(callbacks).toHaveLength(6);
    for (const entry of callbacks) {
      const message = `burst ${ids.indexOf(entry.json!.task_id as string) + 1}`;
      const place = answered.indexOf(message);
      expect(entry.json!.generated_response).toContain(`(saw ${2 * place + 1} messages)`);
    }
  });

  it('keeps two conversations apart', async () => {
    const base = await startApp();
    await Promise.all(
      ['a', 'b'].map(async (name) => {
        for (let n = 1; n <= 2; n += 1) {
          const id = await post(base, { message: `${name}${n}`, callback_url: `${receiver.url}/${name}` });
          await waitForTask(base, id, ['completed']);
        }
      }),
    );
    for (const request of llm.requests) {
      const users = request.messages.filter((m) => m.role === 'user').map((m) => m.content[0]);
      expect(new Set(users).size).toBe(1);
    }
    const history = (await (
      await fetch(`${base}/conversations/${encodeURIComponent(`${receiver.url}/a`)}/messages`)
    ).json()) as { messages: Array<{ content: string }> };
    expect(
      history.messages.map((m) => m.content).filter((c) => c.startsWith('a') || c.startsWith('b')),
    ).toEqual(['a1', 'a2']);
  });

  it('retries an LLM 500 and then succeeds', async () => {
    const base = await startApp();
    llm.script([{ status: 500, body: { error: { message: 'boom' } } }]);
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/retry` });
    const record = await waitForTask(base, id, ['completed', 'failed']);
    expect(record.status).toBe('completed');
    expect(record.attempts).toMatchObject({ llm: 2 });
    expect(llm.requests).toHaveLength(2);
  });

  it('moves to the fallback model when the retries of the primary are spent', async () => {
    const base = await startApp({ LLM_FALLBACK_MODELS: 'mock/fallback', LLM_RETRY_SCHEDULE: '20ms' });
    llm.script([{ status: 503 }, { status: 503 }]);
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/fallback` });
    const record = await waitForTask(base, id, ['completed', 'failed']);
    expect(record.status).toBe('completed');
    expect(llm.requests.map((request) => request.model)).toEqual([
      'mock/primary',
      'mock/primary',
      'mock/fallback',
    ]);
  });

  it('fails a task on LLM 401 at once, delivers the failure, adds nothing to history', async () => {
    const base = await startApp();
    llm.script([{ status: 401, body: { error: { message: 'bad key' } } }]);
    const id = await post(base, {
      message: 'hi',
      callback_url: `${receiver.url}/auth`,
      conversation_id: 'auth',
    });
    const [entry] = await receiver.waitUntil(
      (entries) => entries.some((e) => e.json?.task_id === id),
      20_000,
    );
    const callback = receiver.received.find((e) => e.json?.task_id === id)!.json!;
    expect(entry).toBeDefined();
    expect(callback).toMatchObject({ task_id: id, status: 'failed', error: { type: 'llm_auth' } });
    expect(callback).not.toHaveProperty('generated_response');
    const record = await waitForTask(base, id, ['failed']);
    expect(record.attempts).toMatchObject({ llm: 1 });
    expect(llm.requests).toHaveLength(1);
    const history = (await (await fetch(`${base}/conversations/auth/messages`)).json()) as {
      messages: unknown[];
    };
    expect(history.messages).toEqual([]);
  });

  it('fails tasks with a clear error while API_KEY is unset', async () => {
    const base = await startApp({ API_KEY: '' });
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/nokey` });
    const record = await waitForTask(base, id, ['failed']);
    expect(record.error).toMatchObject({ type: 'config_missing_api_key' });
    expect(String((record.error as { message: string }).message)).toContain('API_KEY');
    expect(llm.requests).toHaveLength(0);
  });
});

describe('delivery', () => {
  it("makes a reply's first delivery attempt before the conversation's next message starts", async () => {
    // A receiver that is slow to answer the first callback only.
    const arrivals: Array<{ at: number; message: string }> = [];
    const slow = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { task_id: string };
        arrivals.push({ at: performance.now(), message: body.task_id });
        setTimeout(() => response.end('ok'), arrivals.length === 1 ? 400 : 0);
      });
    });
    slow.listen(0, '127.0.0.1');
    await once(slow, 'listening');
    try {
      const base = await startApp();
      const callbackUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/slow`;
      const ids = await Promise.all(
        [1, 2, 3].map((n) =>
          post(base, { message: `turn ${n}`, callback_url: callbackUrl, conversation_id: 'slow' }),
        ),
      );
      for (const id of ids) await waitForTask(base, id, ['completed']);
      // Callbacks arrive in the order the messages were answered...
      const answered = llm.requests.map((request) => request.messages.at(-1)!.content);
      expect(arrivals.map((arrival) => `turn ${ids.indexOf(arrival.message) + 1}`)).toEqual(answered);
      // ...and the second waited for the first to be answered (400 ms), not only sent.
      expect(arrivals[1]!.at - arrivals[0]!.at).toBeGreaterThanOrEqual(380);
    } finally {
      slow.close();
    }
  });

  it('delivers after 500, 500, 200 with three recorded attempts, signed with one webhook-id', async () => {
    const base = await startApp({ WEBHOOK_SECRET: SECRET });
    receiver.script([500, 500, 200]);
    const id = await post(base, {
      message: 'hi',
      callback_url: `${receiver.url}/flaky`,
      metadata: { k: 'v' },
    });
    const record = await waitForTask(base, id, ['completed', 'failed']);
    expect(record.status).toBe('completed');
    expect(record.attempts).toMatchObject({ callback: 3 });
    const deliveries = record.deliveries as Array<{ status_code: number; duration_ms: number; at: string }>;
    expect(deliveries.map((d) => d.status_code)).toEqual([500, 500, 200]);
    const attempts = receiver.received.filter((entry) => entry.json?.task_id === id);
    expect(attempts).toHaveLength(3);
    expect(new Set(attempts.map((entry) => entry.headers['webhook-id']))).toEqual(new Set([id]));
    const verifier = new Webhook(SECRET);
    for (const entry of attempts) {
      const payload = verifier.verify(entry.body, {
        'webhook-id': entry.headers['webhook-id'] as string,
        'webhook-timestamp': entry.headers['webhook-timestamp'] as string,
        'webhook-signature': entry.headers['webhook-signature'] as string,
      });
      expect(payload).toMatchObject({ task_id: id, status: 'completed', metadata: { k: 'v' } });
    }
    expect(() =>
      verifier.verify(`${attempts[0]!.body} `, {
        'webhook-id': id,
        'webhook-timestamp': attempts[0]!.headers['webhook-timestamp'] as string,
        'webhook-signature': attempts[0]!.headers['webhook-signature'] as string,
      }),
    ).toThrow();
    expect(attempts[0]!.headers['user-agent']).toMatch(/^llm-webhook\/\d/);
    expect(attempts[0]!.headers['content-type']).toContain('application/json');
    expect(attempts[0]!.json).toMatchObject({
      conversation_id: `${receiver.url}/flaky`,
      model: 'mock/primary',
      usage: { total_tokens: expect.any(Number) },
      generated_response: expect.any(String),
      created_at: expect.any(String),
      completed_at: expect.any(String),
    });
  });

  it('gives unsigned deliveries the same webhook-id and a timestamp, and no signature', async () => {
    const base = await startApp();
    receiver.script([500, 200]);
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/unsigned` });
    const record = await waitForTask(base, id, ['completed', 'failed']);
    expect(record.status).toBe('completed');
    const attempts = receiver.received.filter((entry) => entry.json?.task_id === id);
    expect(attempts).toHaveLength(2);
    for (const entry of attempts) {
      expect(entry.headers['webhook-id']).toBe(id);
      const sentAt = Number(entry.headers['webhook-timestamp']);
      expect(Number.isInteger(sentAt)).toBe(true);
      expect(Math.abs(sentAt - Date.now() / 1000)).toBeLessThan(60);
      expect(entry.headers['webhook-signature']).toBeUndefined();
    }
  });

  it('stops at once on 410 Gone', async () => {
    const base = await startApp();
    receiver.script([410]);
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/gone` });
    const record = await waitForTask(base, id, ['completed', 'failed']);
    expect(record.status).toBe('failed');
    expect(record.attempts).toMatchObject({ callback: 1 });
    // Give a retry (50 ms schedule) every chance to happen; none may.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.received.filter((entry) => entry.json?.task_id === id)).toHaveLength(1);
  });

  it('marks a task failed when the callback retries are spent', async () => {
    const base = await startApp({ CALLBACK_RETRY_SCHEDULE: '20ms' });
    receiver.script([503, 503]);
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/down` });
    const record = await waitForTask(base, id, ['completed', 'failed']);
    expect(record.status).toBe('failed');
    expect(record.error).toMatchObject({ type: 'callback_failed' });
    expect(record.attempts).toMatchObject({ callback: 2 });
  });
});

describe('tasks, conversations, idempotency and metrics', () => {
  it('redelivers a finished task with the same webhook-id', async () => {
    const base = await startApp({ WEBHOOK_SECRET: SECRET });
    const id = await post(base, { message: 'hi', callback_url: `${receiver.url}/again` });
    await waitForTask(base, id, ['completed']);
    const response = await fetch(`${base}/tasks/${id}/redeliver`, { method: 'POST' });
    expect(response.status).toBe(202);
    const both = await receiver.waitUntil(
      (all) => all.filter((entry) => entry.json?.task_id === id).length === 2,
    );
    const copies = both.filter((entry) => entry.json?.task_id === id);
    expect(copies.map((entry) => entry.headers['webhook-id'])).toEqual([id, id]);
    expect(copies[1]!.json).toEqual(copies[0]!.json);
    const record = await waitForTask(base, id, ['completed']);
    expect(record.attempts).toMatchObject({ callback: 2, llm: 1 });
    expect(llm.requests).toHaveLength(1);
  });

  it('lists a conversation oldest first, erases it, and a message in flight does not bring it back', async () => {
    const base = await startApp();
    const path = `${base}/conversations/erase-me`;
    for (const message of ['first', 'second']) {
      const id = await post(base, {
        message,
        callback_url: `${receiver.url}/erase`,
        conversation_id: 'erase-me',
      });
      await waitForTask(base, id, ['completed']);
    }
    const listed = (await (await fetch(`${path}/messages`)).json()) as {
      messages: Array<{ role: string; content: string; at: string }>;
    };
    expect(listed.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(listed.messages[0]).toMatchObject({ content: 'first', at: expect.any(String) });
    expect(listed.messages[2]!.content).toBe('second');

    llm.setLatency(400);
    const inFlight = await post(base, {
      message: 'third',
      callback_url: `${receiver.url}/erase`,
      conversation_id: 'erase-me',
    });
    await waitForTask(base, inFlight, ['processing']);
    expect((await fetch(path, { method: 'DELETE' })).status).toBe(204);
    await waitForTask(base, inFlight, ['completed']);
    const after = (await (await fetch(`${path}/messages`)).json()) as {
      messages: Array<{ content: string }>;
    };
    expect(after.messages.map((m) => m.content)).not.toContain('first');
    expect(after.messages.map((m) => m.content)).not.toContain('second');
  });

  it('makes one task and one LLM call for 20 concurrent requests with one Idempotency-Key', async () => {
    const base = await startApp();
    const body = JSON.stringify({ message: 'once', callback_url: `${receiver.url}/idem` });
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${base}/webhook`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': 'key-1' },
          body,
        }),
      ),
    );
    const ids = await Promise.all(
      responses.map(async (r) => ((await r.json()) as { task_id: string }).task_id),
    );
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(new Set(ids).size).toBe(1);
    expect(responses.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(19);
    await waitForTask(base, ids[0]!, ['completed']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(llm.requests).toHaveLength(1);
    expect(receiver.received.filter((entry) => entry.json?.task_id === ids[0])).toHaveLength(1);

    const conflict = await fetch(`${base}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'key-1' },
      body: JSON.stringify({ message: 'another', callback_url: `${receiver.url}/idem` }),
    });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toHaveProperty('detail');
  });

  it('moves the task counters of /metrics by the right amounts after 10 tasks', async () => {
    const base = await startApp();
    const scrape = async (): Promise<Map<string, number>> => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const values = new Map<string, number>();
      for (const line of text.split('\n')) {
        if (line.startsWith('#') || line.trim() === '') continue;
        const match = /^(\S+?)(\{[^}]*\})?\s+(\S+)$/.exec(line);
        if (match) values.set(`${match[1]}${match[2] ?? ''}`, Number(match[3]));
      }
      return values;
    };
    const before = await scrape();
    expect(before.get('llm_webhook_tasks_accepted_total')).toBe(0);
    receiver.script([410]);
    const ids: string[] = [];
    for (let n = 0; n < 10; n += 1) {
      ids.push(
        await post(base, {
          message: `m${n}`,
          callback_url: `${receiver.url}/metrics`,
          conversation_id: `c${n}`,
        }),
      );
    }
    for (const id of ids) await waitForTask(base, id, ['completed', 'failed']);
    const after = await scrape();
    expect(after.get('llm_webhook_tasks_accepted_total')).toBe(10);
    expect(after.get('llm_webhook_tasks_completed_total')).toBe(9);
    expect(after.get('llm_webhook_tasks_failed_total{reason="callback_failed"}')).toBe(1);
    expect(after.get('llm_webhook_callback_attempts_total{outcome="delivered"}')).toBe(9);
    expect(after.get('llm_webhook_callback_attempts_total{outcome="failed"}')).toBe(1);
    expect(
      after.get('llm_webhook_llm_call_duration_seconds_count{model="mock/primary",outcome="success"}'),
    ).toBe(10);
    expect(after.get('llm_webhook_history_messages_count')).toBe(10);
    expect(after.get('llm_webhook_queue_jobs{state="waiting"}')).toBe(0);
    expect(
      [...after.keys()].some((key) => key.startsWith('llm_webhook_http_request_duration_seconds_bucket')),
    ).toBe(true);
    expect(after.has('llm_webhook_process_resident_memory_bytes')).toBe(true);
  });
});
