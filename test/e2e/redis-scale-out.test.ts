/**
 * The redis mode as real processes: one API and two workers share one Redis, keep every
 * conversation in order and deliver every callback once; role `all` runs both sides in one
 * process; every key of a run carries the QUEUE_PREFIX hash tag (one Redis Cluster slot).
 */
import { existsSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { mockReplyText } from '../../src/dev/mock-llm.js';
import { callingLlmTaskIds, lastUserMessage, scanKeys, useDeployment } from '../support/deployment.js';

const { llm, receiver, freshRun, start, tempDir, accept, deliveredAll } = useDeployment();

/** Unfinished jobs as the service reports them on /metrics (waiting + active + delayed). */
async function unfinishedJobs(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const values = [...text.matchAll(/^llm_webhook_queue_jobs\{state="\w+"\} (\d+)$/gm)].map((match) =>
    Number(match[1]),
  );
  return values.length === 3 ? values.reduce((sum, value) => sum + value, 0) : Number.NaN;
}

/** Redis Cluster hashes only the part between the first `{` and the next `}` (when non-empty). */
function hashTag(key: string): string | null {
  const open = key.indexOf('{');
  if (open === -1) return null;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return null;
  return key.slice(open + 1, close);
}

describe('redis mode across processes', () => {
  it('one API and two workers: 20 conversations of 4 messages, each delivered once, in order, with history', async () => {
    const run = await freshRun();
    llm.setLatency(50);
    // A small concurrency per worker, so neither can take every conversation by itself.
    const workerEnv = run.env({ WORKER_CONCURRENCY: '4' });
    const [api, workerA, workerB] = await Promise.all([
      start('api', run.env()),
      start('worker', workerEnv),
      start('worker', workerEnv),
    ]);

    const conversations = Array.from({ length: 20 }, (_, n) => `conv-${n}`);
    const accepted = new Map<string, string[]>(conversations.map((id) => [id, []]));
    // Message k of every conversation in one parallel wave: waves fix each conversation's order.
    for (let k = 0; k < 4; k += 1) {
      const ids = await Promise.all(
        conversations.map((conversation) =>
          accept(api.url, {
            message: `${conversation} message ${k}`,
            callback_url: `${receiver.url}/${conversation}`,
            conversation_id: conversation,
          }),
        ),
      );
      for (const [n, id] of ids.entries()) accepted.get(conversations[n]!)!.push(id);
    }
    const allIds = [...accepted.values()].flat();
    expect(new Set(allIds).size).toBe(80);

    await receiver.waitUntil(
      (entries) => new Set(entries.map((entry) => entry.json?.task_id)).size >= 80,
      45_000,
    );
    // Wait for the queue to drain, so a duplicate delivery would have had its chance to arrive.
    await waitFor(async () => {
      const records = await Promise.all(
        allIds.map(
          async (id) => ((await (await fetch(`${api.url}/tasks/${id}`)).json()) as { status: string }).status,
        ),
      );
      return records.every((status) => status === 'completed');
    }, 'every task completed');
    await waitFor(async () => (await unfinishedJobs(api.url)) === 0, 'an empty queue');

    // Exactly once each, in this happy path.
    const perTask = new Map<string, number>();
    for (const entry of receiver.received) {
      const id = entry.json?.task_id as string;
      perTask.set(id, (perTask.get(id) ?? 0) + 1);
    }
    expect(perTask.size).toBe(80);
    for (const id of allIds) expect(perTask.get(id), id).toBe(1);

    for (const conversation of conversations) {
      // Every callback of the conversation arrived. (Their arrival order is not a promise: the
      // generating job makes the first attempt itself, but a retry, a redelivery or a delivery a
      // crash left unfinished runs as a `deliver` job of its own; the processing order is checked
      // on the prompts below.)
      const delivered = receiver.received
        .filter((entry) => entry.json?.conversation_id === conversation)
        .map((entry) => entry.json?.task_id);
      expect(new Set(delivered)).toEqual(new Set(accepted.get(conversation)));
      for (const entry of receiver.received.filter((e) => e.json?.conversation_id === conversation)) {
        expect(entry.json?.status).toBe('completed');
      }

      // Prompts of 1, 3, 5, 7 messages, each the previous one plus its reply plus the new message.
      const prompts = llm.requests
        .map((request) => request.messages)
        .filter((messages) => lastUserMessage(messages).startsWith(`${conversation} message`));
      expect(prompts.map((messages) => messages.length)).toEqual([1, 3, 5, 7]);
      prompts.forEach((messages, k) => {
        expect(lastUserMessage(messages)).toBe(`${conversation} message ${k}`);
        if (k === 0) return;
        const previous = prompts[k - 1]!;
        expect(messages.slice(0, previous.length)).toEqual(previous);
        expect(messages[previous.length]).toEqual({ role: 'assistant', content: mockReplyText(previous) });
      });
    }

    // Both workers did work; the API never called the LLM; every worker line about a task names it.
    await waitFor(
      () => callingLlmTaskIds(workerA).length + callingLlmTaskIds(workerB).length >= 80,
      'the log lines',
    );
    const byA = callingLlmTaskIds(workerA);
    const byB = callingLlmTaskIds(workerB);
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.length).toBeGreaterThan(0);
    expect(byA.length + byB.length).toBe(80);
    expect(new Set([...byA, ...byB])).toEqual(new Set(allIds));
    expect(callingLlmTaskIds(api)).toEqual([]);
    for (const worker of [workerA, workerB]) {
      for (const line of worker.logs.filter((l) =>
        ['calling LLM', 'LLM replied', 'callback delivered'].includes(l.msg as string),
      )) {
        expect(allIds).toContain(line.task_id);
      }
    }

    // A worker serves only its operations endpoints.
    await workerA.waitForLog((line) => line.msg === 'listening');
    const onWorker = await fetch(`${workerA.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'hi', callback_url: `${receiver.url}/x` }),
    });
    expect(onWorker.status).toBe(404);
    expect(((await onWorker.json()) as { detail: unknown }).detail).toEqual(expect.any(String));
    expect((await fetch(`${workerA.url}/readyz`)).status).toBe(200);
  });

  it('role all with REDIS_URL runs API and worker in one process, on Redis', async () => {
    const run = await freshRun();
    llm.setLatency(0);
    const dataDir = tempDir();
    const service = await start('all', run.env({ DATA_DIR: dataDir }));
    expect(service.logs.some((line) => line.msg === 'worker started' && line.mode === 'redis')).toBe(true);

    const ids: string[] = [];
    for (let k = 0; k < 3; k += 1) {
      ids.push(
        await accept(service.url, {
          message: `all ${k}`,
          callback_url: `${receiver.url}/all`,
          conversation_id: 'all',
        }),
      );
    }
    await deliveredAll(ids, 20_000);
    expect(receiver.received.map((entry) => entry.json?.task_id)).toEqual(ids);
    expect(llm.requests.map((request) => request.messages.length)).toEqual([1, 3, 5]);
    // Log lines travel through a pipe and may trail the callbacks.
    await waitFor(() => callingLlmTaskIds(service).length >= 3, 'the log lines');
    expect(callingLlmTaskIds(service)).toEqual(ids);

    const history = (await (await fetch(`${service.url}/conversations/all/messages`)).json()) as {
      messages: Array<{ role: string; content: string }>;
    };
    expect(history.messages.map((message) => message.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(history.messages[4]?.content).toBe('all 2');
    // Everything lives in Redis: the task records are there, and no SQLite file was written.
    const keys = await scanKeys(run.redis.url);
    for (const id of ids) expect(keys).toContain(`${run.prefix}:task:${id}`);
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
  });

  it('every key of a run carries the QUEUE_PREFIX hash tag, but the rate-limit counters', async () => {
    const run = await freshRun();
    llm.setLatency(0);
    // Rate limiting on, so its counters show up in the scan too.
    const env = run.env({ RATE_LIMIT: '1000/minute' });
    const [api] = await Promise.all([start('api', env), start('worker', env)]);
    const ids = [
      await accept(api.url, { message: 'one', callback_url: `${receiver.url}/k`, conversation_id: 'keys' }),
      await accept(api.url, { message: 'two', callback_url: `${receiver.url}/k`, conversation_id: 'keys' }),
    ];
    const keyed = await fetch(`${api.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'key-1' },
      body: JSON.stringify({ message: 'three', callback_url: `${receiver.url}/k` }),
    });
    expect(keyed.status).toBe(200);
    ids.push(((await keyed.json()) as { task_id: string }).task_id);
    await deliveredAll(ids, 20_000);
    // One task left unfinished, so the keys of a job in flight are part of the scan as well.
    llm.setLatency(60_000);
    const slow = await accept(api.url, {
      message: 'slow',
      callback_url: `${receiver.url}/k`,
      conversation_id: 'slow',
    });
    await waitFor(
      () => llm.requests.some((request) => lastUserMessage(request.messages) === 'slow'),
      'the slow task at the LLM',
    );
    expect(slow).toEqual(expect.any(String));

    const keys = await scanKeys(run.redis.url);
    const tag = run.prefix.slice(1, -1);
    const rateLimitPrefix = `${tag}:rate-limit:`;
    const untagged = keys.filter((key) => hashTag(key) !== tag);
    // @fastify/rate-limit keeps one counter per client and route, each used alone by a
    // single-key command: they need no common slot, and spreading them spreads the load.
    expect(untagged.filter((key) => !key.startsWith(rateLimitPrefix))).toEqual([]);
    expect(untagged.length).toBeGreaterThan(0);
    // The queue, the store and the idempotency claims are all there, under the tag.
    const tagged = keys.filter((key) => hashTag(key) === tag);
    for (const part of [':task:', ':history:', ':idem:', ':jobs:lw:jobs', ':jobs:meta']) {
      expect(
        tagged.some((key) => key.includes(part)),
        part,
      ).toBe(true);
    }
  });
});
