/** The whole service in one process against a real mock LLM: processing (SPEC §4). */
import { describe, expect, it } from 'vitest';
import { waitForTask } from '../test/support/in-process-app.js';
import { post, useServiceUpstreams } from './service.test-support.js';

const { llm, receiver, startApp } = useServiceUpstreams();

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
