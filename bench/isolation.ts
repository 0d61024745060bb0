/**
 * The isolation scenario (SPEC §9): how long a healthy receiver's callbacks take, accept to
 * arrival (p50 of 20 tasks), with no bad receiver, then after 200 tasks to a receiver that never
 * answers, then after 200 to one that answers 500 at once. Each bad batch is sent, and generated,
 * before the healthy tasks go: what is measured is the deliveries, not a backlog of LLM calls.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '../src/dev/harness.js';
import type { Receiver } from './receiver.js';
import { median } from './stats.js';

export interface IsolationFigures extends Record<string, number> {
  baselineP50Ms: number;
  deadP50Ms: number;
  failingP50Ms: number;
}

const HEALTHY_TASKS = 20;
const BAD_TASKS = 200;

async function listen(server: Server): Promise<string> {
  server.listen({ port: 0, host: '127.0.0.1' });
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function post(baseUrl: string, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${baseUrl}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as { task_id?: string };
  if (response.status !== 200 || json.task_id === undefined) {
    throw new Error(`POST /webhook answered ${response.status}: ${JSON.stringify(json)}`);
  }
  return json.task_id;
}

/** Sends `count` tasks, 20 at a time; resolves their ids with when each was sent (`performance.now()`). */
async function send(
  baseUrl: string,
  count: number,
  body: (n: number) => Record<string, unknown>,
): Promise<Array<{ id: string; sentAtMs: number }>> {
  const sent: Array<{ id: string; sentAtMs: number }> = [];
  for (let start = 0; start < count; start += 20) {
    const batch = Array.from({ length: Math.min(20, count - start) }, (_, index) => start + index);
    sent.push(
      ...(await Promise.all(
        batch.map(async (n) => {
          const sentAtMs = performance.now();
          return { id: await post(baseUrl, body(n)), sentAtMs };
        }),
      )),
    );
  }
  return sent;
}

/** Waits until none of `ids` is still queued or being generated. */
async function generated(baseUrl: string, ids: readonly string[]): Promise<void> {
  await waitFor(
    async () => {
      const statuses = await Promise.all(
        ids.map(
          async (id) => ((await (await fetch(`${baseUrl}/tasks/${id}`)).json()) as { status: string }).status,
        ),
      );
      return statuses.every((status) => status !== 'queued' && status !== 'processing');
    },
    'the bad receiver’s tasks to be generated',
    { timeoutMs: 120_000, intervalMs: 200 },
  );
}

export async function runIsolation(options: {
  baseUrl: string;
  receiver: Receiver;
  runId: string;
}): Promise<IsolationFigures> {
  const { baseUrl, receiver, runId } = options;
  const dead = createServer(() => {});
  const failing = createServer((_req, res) => res.writeHead(500).end());
  const [deadUrl, failingUrl] = await Promise.all([listen(dead), listen(failing)]);

  const healthyP50 = async (label: string): Promise<number> => {
    const sent = await send(baseUrl, HEALTHY_TASKS, (n) => ({
      message: `healthy ${label} ${n}`,
      callback_url: receiver.url,
      conversation_id: `${runId}-healthy-${label}-${n}`,
    }));
    const arrived = await receiver.waitFor(
      sent.map((task) => task.id),
      { idleMs: 60_000, deadlineMs: 120_000 },
    );
    if (arrived < sent.length) throw new Error(`${sent.length - arrived} healthy callbacks did not arrive`);
    return median(sent.map((task) => receiver.arrivals.get(task.id)!.atMs - task.sentAtMs));
  };
  const bad = async (url: string, label: string): Promise<void> => {
    const sent = await send(baseUrl, BAD_TASKS, (n) => ({
      message: `bad ${label} ${n}`,
      callback_url: `${url}/cb`,
      conversation_id: `${runId}-${label}-${n}`,
    }));
    await generated(
      baseUrl,
      sent.map((task) => task.id),
    );
  };

  try {
    await healthyP50('warm-up');
    const baselineP50Ms = await healthyP50('baseline');
    await bad(deadUrl, 'dead');
    const deadP50Ms = await healthyP50('dead');
    await bad(failingUrl, 'failing');
    const failingP50Ms = await healthyP50('failing');
    return { baselineP50Ms, deadP50Ms, failingP50Ms };
  } finally {
    for (const server of [dead, failing]) {
      server.closeAllConnections();
      server.close();
    }
  }
}
