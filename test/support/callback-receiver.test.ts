import { afterEach, describe, expect, it } from 'vitest';
import { type CallbackReceiver, startCallbackReceiver } from './callback-receiver.js';

const post = (url: string, body: string) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-test': '1' }, body });

describe('startCallbackReceiver', () => {
  let receiver: CallbackReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  it('records each POST with headers, raw body and parsed JSON', async () => {
    receiver = await startCallbackReceiver();
    const response = await post(`${receiver.url}/hook`, '{"task_id":"t-1"}');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'received' });
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]).toMatchObject({
      path: '/hook',
      body: '{"task_id":"t-1"}',
      json: { task_id: 't-1' },
      status: 200,
      headers: expect.objectContaining({ 'x-test': '1' }),
    });
    await post(receiver.url, 'not json');
    expect(receiver.received[1]?.json).toBeUndefined();
  });

  it('answers scripted statuses first, then the default', async () => {
    receiver = await startCallbackReceiver({ status: 202 });
    receiver.script([500, 410]);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(receiver.url, '{}')).status);
    expect(statuses).toEqual([500, 410, 202]);
  });

  it('chooses the status per request with a function', async () => {
    receiver = await startCallbackReceiver({ status: (n) => (n === 1 ? 503 : 200) });
    expect((await post(receiver.url, '{}')).status).toBe(503);
    expect((await post(receiver.url, '{}')).status).toBe(200);
  });

  it('waits for a count or a predicate, before or after arrival', async () => {
    receiver = await startCallbackReceiver();
    const byCount = receiver.waitFor(2, 5_000);
    const byPredicate = receiver.waitFor((callback) => (callback.json as { n?: number })?.n === 2, 5_000);
    await post(receiver.url, '{"n":1}');
    await post(receiver.url, '{"n":2}');
    expect((await byCount).map((callback) => callback.json)).toEqual([{ n: 1 }, { n: 2 }]);
    expect((await byPredicate).json).toEqual({ n: 2 });
    expect((await receiver.waitFor(1, 10)).length).toBe(2);
  });

  it('rejects with a clear message on timeout', async () => {
    receiver = await startCallbackReceiver();
    await expect(receiver.waitFor(1, 50)).rejects.toThrow(
      /Timed out after 50 ms waiting for 1 callback\(s\); received 0/,
    );
  });
});
