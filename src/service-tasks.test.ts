/** The whole service in one process: redelivery, conversations, idempotency and metrics. */
import { describe, expect, it } from 'vitest';
import { waitForTask } from '../test/support/in-process-app.js';
import { post, SECRET, useServiceUpstreams } from './service.test-support.js';

const { llm, receiver, startApp } = useServiceUpstreams();

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
