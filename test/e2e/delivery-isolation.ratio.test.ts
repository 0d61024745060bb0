/**
 * Delivery isolation (SPEC §9), measured against the real service process in both modes: a
 * receiver that never answers, or answers 500 at once, does not slow another destination's
 * callbacks down beyond 3 times their latency without it (as ratios of runs side by side, on the
 * same process), and its own deliveries are held, not lost.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { type CallbackReceiver, startCallbackReceiver } from '../support/callback-receiver.js';
import { useDeployment } from '../support/deployment.js';
import type { ServiceProcess } from '../support/start-service.js';

const deployment = useDeployment();
const { receiver, llm, accept } = deployment;

/** The default delivery settings: the scenario is the one a new user meets. */
const DEFAULT_DELIVERY = { CALLBACK_RETRY_SCHEDULE: '5s,5m,30m,2h,5h,10h,10h' };
const HEALTHY_TASKS = 20;
const BAD_TASKS = 200;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
  receiver.reset();
});

/** A receiver that accepts every connection and never answers; counts the requests it got. */
async function startDeadReceiver(): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const server: Server = createServer(() => {
    requests += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests };
}

async function startReceiver(status: (n: number) => number): Promise<CallbackReceiver> {
  const started = await startCallbackReceiver({ status: (n) => status(n) });
  closers.push(() => started.close());
  return started;
}

/** Sends `count` tasks, `parallel` at a time; resolves their ids with the time each was sent. */
async function sendTasks(
  base: string,
  count: number,
  body: (n: number) => Record<string, unknown>,
  parallel = 20,
): Promise<Array<{ id: string; sentAt: number }>> {
  const sent: Array<{ id: string; sentAt: number }> = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - start) }, (_, index) => start + index);
    sent.push(
      ...(await Promise.all(
        batch.map(async (n) => {
          const sentAt = Date.now();
          return { id: await accept(base, body(n)), sentAt };
        }),
      )),
    );
  }
  return sent;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Sends the bad receiver's tasks and waits until the LLM has answered them all: "then" the healthy ones. */
async function sendBadTasks(base: string, callbackUrl: string, label: string): Promise<void> {
  const before = llm.requests.length;
  await sendTasks(base, BAD_TASKS, (n) => ({
    message: `to the ${label} receiver ${n}`,
    callback_url: callbackUrl,
    conversation_id: `${label}-${n}`,
  }));
  await waitFor(() => llm.requests.length >= before + BAD_TASKS, `the ${label} receiver's replies`, {
    timeoutMs: 60_000,
  });
}

/** The p50, sent to received, of 20 tasks to the healthy receiver. */
async function healthyP50(base: string, label: string): Promise<number> {
  const sent = await sendTasks(base, HEALTHY_TASKS, (n) => ({
    message: `healthy ${label} ${n}`,
    callback_url: `${receiver.url}/healthy`,
    conversation_id: `healthy-${label}-${n}`,
  }));
  const received = await deployment.deliveredAll(
    sent.map((task) => task.id),
    60_000,
  );
  return median(
    sent.map((task) => received.find((callback) => callback.json?.task_id === task.id)!.at - task.sentAt),
  );
}

async function destinationsOf(base: string): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${base}/destinations`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { destinations: Array<Record<string, unknown>> }).destinations;
}

async function startMode(
  mode: 'embedded' | 'redis',
  extra: Record<string, string> = {},
): Promise<ServiceProcess> {
  if (mode === 'embedded') {
    return deployment.start(
      'all',
      deployment.env({ DATA_DIR: deployment.tempDir(), RATE_LIMIT: 'off', ...extra }),
    );
  }
  const run = await deployment.freshRun();
  return deployment.start('all', run.env(extra));
}

describe.each(['embedded', 'redis'] as const)('delivery isolation, %s mode', (mode) => {
  it('keeps a healthy receiver within 3x of its own latency while another never answers, or answers 500', async () => {
    const service = await startMode(mode, DEFAULT_DELIVERY);
    // Warm up (connections, JIT), then the baseline: no bad receiver at all.
    await healthyP50(service.url, 'warm-up');
    const baseline = await healthyP50(service.url, 'baseline');

    const dead = await startDeadReceiver();
    await sendBadTasks(service.url, `${dead.url}/never`, 'dead');
    const withDead = await healthyP50(service.url, 'dead');

    const failing = await startReceiver(() => 500);
    await sendBadTasks(service.url, `${failing.url}/fails`, 'failing');
    const withFailing = await healthyP50(service.url, 'failing');

    const report = `p50: baseline ${baseline} ms, dead receiver ${withDead} ms, failing receiver ${withFailing} ms`;
    console.log(`[${mode}] ${report}`);
    // A floor of 50 ms keeps a baseline of a few milliseconds from turning jitter into a failure.
    expect(withDead, report).toBeLessThanOrEqual(3 * Math.max(baseline, 50));
    expect(withFailing, report).toBeLessThanOrEqual(3 * Math.max(baseline, 50));
    // The failing receiver's breaker opens. (The healthy callbacks may all be in before its
    // queued deliveries have failed often enough: their first attempts need no queue.)
    const failingView = async () =>
      (await destinationsOf(service.url)).find((entry) =>
        String(entry.destination).endsWith(new URL(failing.url).port),
      );
    await waitFor(
      async () => (await failingView())?.state === 'open',
      "the failing receiver's breaker to open",
      {
        timeoutMs: 30_000,
      },
    );
    expect(failing.received.length).toBeLessThan(BAD_TASKS);
  }, 180_000);
});
