/**
 * The redis mode's failure cases as real processes: a worker SIGKILLed mid-task (its jobs move to
 * another worker), Redis stopped and started again (503 within 2 s, then recovery without
 * restarts), an API SIGKILLed mid-burst (nothing it answered 200 is lost).
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import {
  callingLlmTaskIds,
  expectRefusedQuickly,
  lastUserMessage,
  statusOf,
  useDeployment,
} from '../support/deployment.js';
import { postWebhook } from '../support/in-process-app.js';
import type { ServiceProcess } from '../support/start-service.js';

const { llm, receiver, freshRun, start, accept, deliveredAll } = useDeployment();

describe('redis mode failures across processes', () => {
  it('completes the tasks of a SIGKILLed worker on the other worker, with the same webhook-id', async () => {
    const run = await freshRun();
    llm.setLatency(5_000);
    const env = run.env({
      QUEUE_LOCK_DURATION_MS: '2000',
      WEBHOOK_SECRET: `whsec_${Buffer.from('a secret of thirty-two bytes ok!').toString('base64')}`,
    });
    const [api, ...workers] = await Promise.all([
      start('api', env),
      start('worker', env),
      start('worker', env),
    ]);

    const ids: string[] = [];
    for (let n = 0; n < 5; n += 1) {
      ids.push(
        await accept(api.url, {
          message: `f-${n} message 0`,
          callback_url: `${receiver.url}/f`,
          conversation_id: `f-${n}`,
        }),
      );
    }
    // A second message behind one of them: its prompt must still hold the first exchange.
    ids.push(
      await accept(api.url, {
        message: 'f-4 message 1',
        callback_url: `${receiver.url}/f`,
        conversation_id: 'f-4',
      }),
    );

    // Every conversation's head is inside a slow LLM call; kill the worker holding most of them.
    await waitFor(() => llm.requests.length >= 5, 'five LLM calls in flight');
    await waitFor(
      () => workers.reduce((sum, worker) => sum + callingLlmTaskIds(worker).length, 0) >= 5,
      'the workers logged their calls',
    );
    const [victim, survivor] = [...workers].sort(
      (a, b) => callingLlmTaskIds(b).length - callingLlmTaskIds(a).length,
    ) as [ServiceProcess, ServiceProcess];
    // Its calls still running: those whose reply it never delivered.
    const deliveredBefore = new Set(receiver.received.map((entry) => entry.json?.task_id));
    const orphaned = callingLlmTaskIds(victim).filter((id) => !deliveredBefore.has(id));
    expect((await victim.kill('SIGKILL')).signal).toBe('SIGKILL');
    expect(orphaned.length).toBeGreaterThan(0);
    llm.setLatency(50);

    await deliveredAll(ids);
    // The survivor ran each orphaned task again, once its claim had lapsed.
    await waitFor(() => orphaned.every((id) => callingLlmTaskIds(survivor).includes(id)), 'the log lines');
    const rerun = callingLlmTaskIds(survivor);
    for (const id of orphaned) expect(rerun).toContain(id);
    for (const entry of receiver.received) {
      expect(entry.json?.status).toBe('completed');
      expect(entry.headers['webhook-id']).toBe(entry.json?.task_id);
      expect(entry.headers['webhook-signature']).toMatch(/^v1,/);
    }
    const secondPrompts = llm.requests.filter(
      (request) => lastUserMessage(request.messages) === 'f-4 message 1',
    );
    expect(secondPrompts.length).toBeGreaterThan(0);
    for (const request of secondPrompts) expect(request.messages).toHaveLength(3);
    const f4 = receiver.received
      .filter((entry) => entry.json?.conversation_id === 'f-4')
      .map((entry) => entry.json?.task_id);
    expect(f4.indexOf(ids[4])).toBeLessThan(f4.lastIndexOf(ids[5]));
  });

  it('answers 503 within 2 s while Redis is down, and recovers on its own once it is back', async () => {
    const run = await freshRun();
    llm.setLatency(0);
    const env = run.env();
    const [api, worker] = await Promise.all([start('api', env), start('worker', env)]);
    await worker.waitForLog((line) => line.msg === 'listening');
    const before = await accept(api.url, {
      message: 'before',
      callback_url: `${receiver.url}/r`,
      conversation_id: 'r',
    });
    await deliveredAll([before]);

    await run.redis.stop();
    for (let n = 0; n < 3; n += 1) {
      await expectRefusedQuickly(api.url, {
        message: `during ${n}`,
        callback_url: `${receiver.url}/r`,
        conversation_id: 'r',
      });
    }
    const readyStartedAt = performance.now();
    expect(await statusOf(`${api.url}/readyz`)).toBe(503);
    expect(performance.now() - readyStartedAt).toBeLessThan(2_500);
    expect(await statusOf(`${worker.url}/readyz`)).toBe(503);
    expect(await statusOf(`${api.url}/healthz`)).toBe(200);

    // A fresh server on the same port (its data is gone: persistence is off in tests).
    await run.redis.restart();
    await waitFor(async () => (await statusOf(`${api.url}/readyz`)) === 200, 'the API ready again', {
      timeoutMs: 20_000,
    });
    await waitFor(async () => (await statusOf(`${worker.url}/readyz`)) === 200, 'the worker ready again', {
      timeoutMs: 20_000,
    });
    const after = await accept(api.url, {
      message: 'after',
      callback_url: `${receiver.url}/r`,
      conversation_id: 'r2',
    });
    await deliveredAll([after]);
    await waitFor(() => callingLlmTaskIds(worker).length >= 2, 'the log lines');
    expect(callingLlmTaskIds(worker)).toEqual([before, after]);
    expect(api.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
  });

  it('loses nothing an API answered 200 when it is SIGKILLed mid-burst', async () => {
    const run = await freshRun();
    llm.setLatency(0);
    const env = run.env();
    const [first] = await Promise.all([start('api', env), start('worker', env)]);

    const accepted: Array<{ n: number; id: string; sentAt: number; answeredAt: number }> = [];
    let failed = 0;
    let killed: Promise<unknown> | null = null;
    let next = 0;
    // Five senders at a time, so requests are in flight at every moment, the kill included.
    const sender = async (): Promise<void> => {
      while (next < 50) {
        const n = next;
        next += 1;
        const sentAt = performance.now();
        try {
          const { status, json } = await postWebhook(first.url, {
            message: `burst ${n}`,
            callback_url: `${receiver.url}/b`,
            conversation_id: `b-${n % 10}`,
          });
          if (status !== 200) {
            failed += 1;
            continue;
          }
          accepted.push({ n, id: json.task_id as string, sentAt, answeredAt: performance.now() });
          if (accepted.length >= 25 && killed === null) killed = first.kill('SIGKILL');
        } catch {
          failed += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: 5 }, sender));
    expect(killed).not.toBeNull();
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(accepted.length).toBeGreaterThanOrEqual(25);
    expect(accepted.length + failed).toBe(50);

    const second = await start('api', env);
    const ids = accepted.map((entry) => entry.id);
    await deliveredAll(ids);
    for (const id of ids) {
      const record = (await (await fetch(`${second.url}/tasks/${id}`)).json()) as { status: string };
      expect(['delivering', 'completed']).toContain(record.status);
    }
    // Within a conversation, a message answered 200 before the next one was sent is answered
    // first: its LLM call comes first. (Callback arrival is not compared: the generating job makes
    // the first attempt itself, but a retry runs as a `deliver` job of its own, which later replies
    // may overtake.)
    const firstCall = new Map<string, number>();
    llm.requests.forEach((request, index) => {
      const message = lastUserMessage(request.messages);
      if (!firstCall.has(message)) firstCall.set(message, index);
    });
    let ordered = 0;
    for (const a of accepted) {
      for (const b of accepted) {
        if (a.n % 10 !== b.n % 10 || a.answeredAt >= b.sentAt) continue;
        expect(firstCall.get(`burst ${a.n}`)!, `${a.n} before ${b.n}`).toBeLessThan(
          firstCall.get(`burst ${b.n}`)!,
        );
        ordered += 1;
      }
    }
    expect(ordered).toBeGreaterThan(0);
  });
});
