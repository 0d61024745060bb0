/** The whole service in one process against a real callback receiver: delivery (SPEC §5). */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { waitForTask } from '../test/support/in-process-app.js';
import { post, SECRET, useServiceUpstreams } from './service.test-support.js';

const { llm, receiver, startApp } = useServiceUpstreams();

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

  it("keeps a conversation's callbacks in order when one of them waits for a retry in the delivery queue", async () => {
    // The first reply goes to a receiver that refuses it once, so its retry waits in the delivery
    // queue; the later replies go to another, healthy receiver, where their first attempts would
    // be made at once: they queue behind it instead.
    const delivered: string[] = [];
    let refused = 0;
    const receiverOf = (refuseFirst: boolean) =>
      createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          if (refuseFirst && refused === 0) {
            refused += 1;
            response.statusCode = 500;
            response.end('not yet');
            return;
          }
          delivered.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { task_id: string }).task_id);
          response.end('ok');
        });
      });
    const flaky = receiverOf(true);
    const steady = receiverOf(false);
    for (const server of [flaky, steady]) server.listen(0, '127.0.0.1');
    await Promise.all([once(flaky, 'listening'), once(steady, 'listening')]);
    try {
      const base = await startApp({
        CALLBACK_RETRY_SCHEDULE: '500ms,500ms',
        CALLBACK_FIRST_ATTEMPT: 'inline',
      });
      const urlOf = (server: typeof flaky) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`;
      const ids: string[] = [];
      for (const [n, server] of [flaky, steady, steady].entries()) {
        ids.push(
          await post(base, { message: `turn ${n}`, callback_url: urlOf(server), conversation_id: 'mixed' }),
        );
      }
      for (const id of ids) await waitForTask(base, id, ['completed']);
      expect(refused).toBe(1);
      expect(delivered).toEqual(ids);
      const first = (await (await fetch(`${base}/tasks/${ids[0]}`)).json()) as { deliveries: unknown[] };
      expect(first.deliveries).toHaveLength(2);
    } finally {
      flaky.close();
      steady.close();
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
