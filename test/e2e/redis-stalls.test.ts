/**
 * The redis mode when something stops without going away: a Redis that hangs (SIGSTOP) must
 * still get a 503 within 2 s and heal on SIGCONT; a worker asked to stop (SIGTERM) with a job in
 * a slow LLM call hands it back at once, so another worker finishes it long before its lock
 * would have expired.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import {
  callingLlmTaskIds,
  expectRefusedQuickly,
  lastUserMessage,
  statusOf,
  useDeployment,
} from '../support/deployment.js';

const { llm, receiver, freshRun, start, accept, deliveredAll } = useDeployment();
const frozen = new Set<number>();

// Registered after the deployment's own hooks, so it runs first: a stopped redis-server
// resumes before it is asked to stop.
afterEach(() => {
  for (const pid of frozen) process.kill(pid, 'SIGCONT');
  frozen.clear();
});

function redisPid(port: number): number {
  const info = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'info', 'server'], {
    encoding: 'utf8',
  });
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no process_id in INFO: ${info}`);
  return pid;
}

describe('redis mode, stalls', () => {
  it('answers 503 within 2 s while Redis hangs, and finishes every task once it resumes', async () => {
    const run = await freshRun();
    llm.setLatency(1_000);
    const env = run.env();
    const [api, worker] = await Promise.all([start('api', env), start('worker', env)]);
    const inFlight = await accept(api.url, {
      message: 'in flight',
      callback_url: `${receiver.url}/s`,
      conversation_id: 's',
    });
    const behind = await accept(api.url, {
      message: 'behind',
      callback_url: `${receiver.url}/s`,
      conversation_id: 's',
    });
    await waitFor(() => llm.requests.length >= 1, 'the first call at the LLM');

    // Connections stay open but nothing answers: only timeouts can save the request.
    const pid = redisPid(run.redis.port);
    process.kill(pid, 'SIGSTOP');
    frozen.add(pid);
    for (let n = 0; n < 2; n += 1) {
      await expectRefusedQuickly(api.url, {
        message: `frozen ${n}`,
        callback_url: `${receiver.url}/s`,
        conversation_id: 'frozen',
      });
    }
    const readyStartedAt = performance.now();
    expect(await statusOf(`${api.url}/readyz`)).toBe(503);
    expect(performance.now() - readyStartedAt).toBeLessThan(2_500);
    // The LLM answers meanwhile; storing its result fails or waits.
    await worker.waitForLog((line) => line.msg === 'LLM replied' && line.task_id === inFlight);

    process.kill(pid, 'SIGCONT');
    frozen.delete(pid);
    await waitFor(async () => (await statusOf(`${api.url}/readyz`)) === 200, 'the API ready again');
    const after = await accept(api.url, {
      message: 'after',
      callback_url: `${receiver.url}/s`,
      conversation_id: 's',
    });
    llm.setLatency(0);
    await deliveredAll([inFlight, behind, after], 30_000);

    // The conversation kept its order and its history holds each exchange once. (The requests
    // answered 503 are not looked at: written to a socket Redis had stopped reading, they may
    // still run once it resumes, and the API cannot know.)
    const order = [
      ...new Set(
        receiver.received
          .filter((entry) => entry.json?.conversation_id === 's')
          .map((entry) => entry.json?.task_id),
      ),
    ];
    expect(order).toEqual([inFlight, behind, after]);
    const history = (await (await fetch(`${api.url}/conversations/s/messages`)).json()) as {
      messages: Array<{ role: string; content: string }>;
    };
    expect(
      history.messages.filter((message) => message.role === 'user').map((message) => message.content),
    ).toEqual(['in flight', 'behind', 'after']);
    const lastPrompt = llm.requests.filter((request) => lastUserMessage(request.messages) === 'after').at(-1);
    expect(lastPrompt?.messages).toHaveLength(5);
  });

  it('a worker stopped with SIGTERM hands its running job back at once; another worker finishes it', async () => {
    const run = await freshRun();
    llm.setLatency(60_000);
    // Locks that would take a minute to expire: only the hand-back can make the deadline below.
    const env = run.env({ QUEUE_LOCK_DURATION_MS: '60000', SHUTDOWN_TIMEOUT_MS: '300' });
    const [api, leaving] = await Promise.all([start('api', env), start('worker', env)]);
    const id = await accept(api.url, {
      message: 'handed back',
      callback_url: `${receiver.url}/h`,
      conversation_id: 'h',
    });
    await waitFor(() => callingLlmTaskIds(leaving).includes(id), 'the call at the LLM');

    const exit = await leaving.kill('SIGTERM');
    expect(exit.code).toBe(0);
    expect(receiver.received).toHaveLength(0);

    llm.setLatency(0);
    const staying = await start('worker', env);
    await deliveredAll([id], 20_000);
    await waitFor(() => callingLlmTaskIds(staying).length >= 1, 'the log line');
    expect(callingLlmTaskIds(staying)).toEqual([id]);
    const record = (await (await fetch(`${api.url}/tasks/${id}`)).json()) as { attempts: { llm: number } };
    expect(record.attempts.llm).toBe(2);
  });
});
