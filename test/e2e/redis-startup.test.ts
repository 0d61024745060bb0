/**
 * The redis mode when the processes start before Redis does (a compose file brings them up
 * together): they start anyway, answer 503 within 2 s and report not ready, heal once Redis
 * answers, and a request answered 503 meanwhile leaves no trace behind.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { expectRefusedQuickly, scanKeys, statusOf, useDeployment } from '../support/deployment.js';
import { postWebhook, waitForTask } from '../support/in-process-app.js';

const { receiver, plannedRun, start } = useDeployment();

describe('redis mode, start-up before Redis', () => {
  it('starts without Redis, answers 503 meanwhile, then works with no trace of what was refused', async () => {
    const run = await plannedRun();
    const env = run.env();
    const [api, worker] = await Promise.all([start('api', env), start('worker', env)]);
    await worker.waitForLog((line) => line.msg === 'listening');
    expect(await statusOf(`${api.url}/readyz`)).toBe(503);
    expect(await statusOf(`${worker.url}/readyz`)).toBe(503);
    for (let n = 0; n < 3; n += 1) {
      await expectRefusedQuickly(api.url, {
        message: `refused ${n}`,
        callback_url: `${receiver.url}/s`,
      });
    }

    const redis = await run.startRedis();
    await waitFor(async () => (await statusOf(`${api.url}/readyz`)) === 200, 'the API ready');
    await waitFor(async () => (await statusOf(`${worker.url}/readyz`)) === 200, 'the worker ready');
    const { status, json } = await postWebhook(api.url, {
      message: 'accepted',
      callback_url: `${receiver.url}/s`,
    });
    expect(status).toBe(200);
    const id = json.task_id as string;
    await receiver.waitFor((entry) => entry.json?.task_id === id, 20_000);
    // The worker records the delivery after the receiver has answered: wait for that record too.
    await waitForTask(api.url, id, ['completed']);

    // Only the accepted task was ever stored or run: the refused ones were not sent on connect.
    expect((await scanKeys(redis.url, `${run.prefix}:task:*`)).sort()).toEqual([
      `${run.prefix}:task:${id}`,
      `${run.prefix}:task:${id}:deliveries`,
    ]);
    await worker.waitForLog((line) => line.msg === 'calling LLM');
    expect(worker.logs.filter((line) => line.msg === 'calling LLM').map((line) => line.task_id)).toEqual([
      id,
    ]);
    expect(receiver.received.map((entry) => entry.json?.task_id)).toEqual([id]);
  });
});
