/**
 * The redis mode's takeover bound with the default settings: a worker SIGKILLed in the middle of
 * its tasks' LLM calls loses them for at most about 1.5 × QUEUE_LOCK_DURATION_MS (7.5 s); the
 * worker that stays runs them again and delivers them, and the messages queued behind them,
 * within the README's 10 s, in order.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { callingLlmTaskIds, lastUserMessage, useDeployment } from '../support/deployment.js';

const { llm, receiver, freshRun, start, accept, deliveredAll } = useDeployment();

/** What the README promises for the default settings, kill to callback. */
const TAKEOVER_BOUND_MS = 10_000;
const CONVERSATIONS = 3;

describe('redis mode takeover with the default lock settings', () => {
  it('delivers the tasks of a worker SIGKILLed mid-LLM-call within 10 s, then the messages behind them', async () => {
    const run = await freshRun();
    // Only the killed worker's calls see this latency: it is lowered before the rerun.
    llm.setLatency(60_000);
    // No QUEUE_LOCK_DURATION_MS: the defaults are what is under test.
    const env = run.env({
      WEBHOOK_SECRET: `whsec_${Buffer.from('a secret of thirty-two bytes ok!').toString('base64')}`,
    });
    // Full once it runs the conversations' heads, so the warm-up task below goes to the survivor.
    const victimEnv = { ...env, WORKER_CONCURRENCY: String(CONVERSATIONS) };
    const [api, victim] = await Promise.all([start('api', env), start('worker', victimEnv)]);

    const heads: string[] = [];
    const followers: string[] = [];
    for (let n = 0; n < CONVERSATIONS; n += 1) {
      const body = { callback_url: `${receiver.url}/k`, conversation_id: `k-${n}` };
      heads.push(await accept(api.url, { ...body, message: `k-${n} message 0` }));
      followers.push(await accept(api.url, { ...body, message: `k-${n} message 1` }));
    }
    // Logged before the request goes out: the mock must hold every call before a reply is scripted.
    await waitFor(
      () =>
        heads.every((id) => callingLlmTaskIds(victim).includes(id)) && llm.requests.length >= CONVERSATIONS,
      'every head inside its LLM call',
    );
    // The survivor runs its stalled-job checks before the kill, as a worker of a deployment does,
    // and has run a task (the next LLM request is answered at once), so what is timed below is
    // the takeover, not its first job's start-up.
    const survivor = await start('worker', env);
    llm.script([{ status: 200, delayMs: 0 }]);
    const warmUp = await accept(api.url, {
      message: 'warm-up',
      callback_url: `${receiver.url}/w`,
      conversation_id: 'warm-up',
    });
    await deliveredAll([warmUp]);
    expect(callingLlmTaskIds(survivor)).toEqual([warmUp]);
    expect(receiver.received.filter((entry) => entry.path === '/k')).toHaveLength(0);

    const killedAt = Date.now();
    expect((await victim.kill('SIGKILL')).signal).toBe('SIGKILL');
    llm.setLatency(50);

    // Waited for well past the bound, so a regression reports how long the takeover took.
    await deliveredAll([...heads, ...followers], 90_000);
    const deliveredAt = (id: string): number =>
      Math.min(...receiver.received.filter((entry) => entry.json?.task_id === id).map((entry) => entry.at));
    const headsMs = Math.max(...heads.map(deliveredAt)) - killedAt;
    const allMs = Math.max(...followers.map(deliveredAt)) - killedAt;
    expect(headsMs, `the killed worker's tasks were delivered ${headsMs} ms after the kill`).toBeLessThan(
      TAKEOVER_BOUND_MS,
    );
    expect(allMs, `the messages behind them were delivered ${allMs} ms after the kill`).toBeLessThan(
      TAKEOVER_BOUND_MS,
    );

    // The survivor ran each task again (the killed worker's run counts as the first attempt).
    await waitFor(
      () => [...heads, ...followers].every((id) => callingLlmTaskIds(survivor).includes(id)),
      'the log lines',
    );
    for (const id of heads) {
      const record = (await (await fetch(`${api.url}/tasks/${id}`)).json()) as { attempts: { llm: number } };
      expect(record.attempts.llm).toBe(2);
    }
    // Nothing lost, each conversation in order, and the second prompt holds the first exchange.
    for (const entry of receiver.received) {
      expect(entry.json?.status).toBe('completed');
      expect(entry.headers['webhook-id']).toBe(entry.json?.task_id);
    }
    for (let n = 0; n < CONVERSATIONS; n += 1) {
      const order = [
        ...new Set(
          receiver.received
            .filter((entry) => entry.json?.conversation_id === `k-${n}`)
            .map((entry) => entry.json?.task_id),
        ),
      ];
      expect(order).toEqual([heads[n], followers[n]]);
      const prompts = llm.requests.filter(
        (request) => lastUserMessage(request.messages) === `k-${n} message 1`,
      );
      expect(prompts).toHaveLength(1);
      expect(prompts[0]?.messages).toHaveLength(3);
    }
  }, 120_000);
});
