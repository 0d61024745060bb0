/**
 * The embedded mode as a real process: SIGKILL with tasks in flight loses nothing, SIGTERM
 * drains and exits 0 within SHUTDOWN_TIMEOUT_MS, a bad configuration stops start-up with one
 * clear line.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { waitFor } from '../../src/dev/harness.js';
import { useDeployment } from '../support/deployment.js';
import { postWebhook } from '../support/in-process-app.js';

const { llm, receiver, env, tempDir, start, deliveredAll } = useDeployment();

async function postMany(base: string, count: number, prefix: string): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, n) => {
      // Ten conversations of two messages each: ordering and parallelism both in play.
      const { status, json } = await postWebhook(base, {
        message: `${prefix} ${n}`,
        callback_url: `${receiver.url}/${prefix}`,
        conversation_id: `${prefix}-${n % 10}`,
      });
      expect(status).toBe(200);
      return json.task_id as string;
    }),
  );
}

describe('embedded mode, real process', () => {
  it('loses none of 20 tasks in flight when SIGKILLed, and delivers all after restart', async () => {
    const dataDir = tempDir();
    llm.setLatency(5_000);
    const first = await start('all', env({ DATA_DIR: dataDir }));
    const ids = await postMany(first.url, 20, 'kill');
    // Wait until the worker is inside LLM calls, then kill without warning.
    await waitFor(() => llm.requests.length >= 10, '10 LLM calls in flight', { timeoutMs: 10_000 });
    expect(llm.requests.length).toBeGreaterThanOrEqual(10);
    const exit = await first.kill('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    expect(receiver.received.filter((entry) => entry.json?.status === 'completed')).toHaveLength(0);

    llm.setLatency(10);
    const second = await start('all', env({ DATA_DIR: dataDir }), { port: first.port });
    try {
      await deliveredAll(ids, 30_000);
      const delivered = new Set(receiver.received.map((entry) => entry.json?.task_id));
      for (const id of ids) expect(delivered.has(id)).toBe(true);
      for (const id of ids) {
        const record = (await (await fetch(`${second.url}/tasks/${id}`)).json()) as { status: string };
        expect(['completed', 'delivering']).toContain(record.status);
      }
    } finally {
      await second.kill('SIGTERM');
    }
  });

  it('drains on SIGTERM, exits 0, and completes what was handed back after a restart', async () => {
    const dataDir = tempDir();
    llm.setLatency(3_000);
    const first = await start('all', env({ DATA_DIR: dataDir, SHUTDOWN_TIMEOUT_MS: '500' }));
    const ids = await postMany(first.url, 10, 'term');
    await waitFor(() => llm.requests.length >= 1, 'the first LLM call', { timeoutMs: 10_000 });
    const exit = await first.kill('SIGTERM');
    expect(exit.code).toBe(0);
    expect(first.logs.some((line) => line.msg === 'stopped')).toBe(true);

    llm.setLatency(10);
    const second = await start('all', env({ DATA_DIR: dataDir }), { port: first.port });
    try {
      await deliveredAll(ids, 30_000);
    } finally {
      expect((await second.kill('SIGTERM')).code).toBe(0);
    }
  });

  it.each([
    'on',
    'off',
  ])('exits 0 within SHUTDOWN_TIMEOUT_MS while a receiver hangs (outbound thread %s), and delivers after a restart', async (outboundThread) => {
    // A receiver that takes the request and does not answer until told to.
    let answering = false;
    const held: ServerResponse[] = [];
    const hits: string[] = [];
    const hanging = createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        hits.push(Buffer.concat(chunks).toString('utf8'));
        if (answering) response.writeHead(200).end();
        else held.push(response);
      });
    });
    hanging.listen(0, '127.0.0.1');
    await once(hanging, 'listening');
    onTestFinished(() => {
      hanging.closeAllConnections();
      hanging.close();
    });
    const hookUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/hook`;

    const dataDir = tempDir();
    llm.setLatency(0);
    const settings = {
      DATA_DIR: dataDir,
      OUTBOUND_THREAD: outboundThread,
      SHUTDOWN_TIMEOUT_MS: '500',
      CALLBACK_TIMEOUT_MS: '30000',
    };
    const first = await start('all', env(settings));
    const { status, json } = await postWebhook(first.url, { message: 'hi', callback_url: hookUrl });
    expect(status).toBe(200);
    await waitFor(async () => held.length === 1, 'the callback attempt to reach the receiver', {
      timeoutMs: 20_000,
    });

    const signalledAt = Date.now();
    const exit = await first.kill('SIGTERM');
    const tookMs = Date.now() - signalledAt;
    expect(exit.code).toBe(0);
    // 500 ms of drain plus the process's own exit; a wait for the 30 s callback is far above.
    expect(tookMs).toBeLessThan(4_000);

    answering = true;
    const second = await start('all', env(settings), { port: first.port });
    try {
      await waitFor(
        async () => hits.filter((body) => body.includes(json.task_id as string)).length >= 2,
        'the handed-back delivery to be made again',
        { timeoutMs: 30_000 },
      );
    } finally {
      await second.kill('SIGTERM');
    }
  });

  it('logs JSON lines, each line about a task carrying its task_id', async () => {
    const dataDir = tempDir();
    llm.setLatency(0);
    const service = await start('all', env({ DATA_DIR: dataDir }));
    try {
      const [id] = await postMany(service.url, 1, 'logs');
      await receiver.waitUntil((entries) => entries.some((entry) => entry.json?.task_id === id), 20_000);
      await service.waitForLog((line) => line.msg === 'callback delivered' && line.task_id === id);
      const taskLines = service.logs.filter((line) => JSON.stringify(line).includes(id!));
      expect(taskLines.length).toBeGreaterThanOrEqual(3);
      for (const line of taskLines) expect(line.raw).toBeUndefined();
      const workerLines = service.logs.filter((line) =>
        ['calling LLM', 'LLM replied', 'callback delivered'].includes(line.msg as string),
      );
      for (const line of workerLines) expect(line.task_id).toEqual(expect.any(String));
    } finally {
      await service.kill('SIGTERM');
    }
  });

  it('stops start-up on a bad value with one line naming the variable', async () => {
    const service = await start(
      'all',
      { DATA_DIR: tempDir(), WORKER_CONCURRENCY: 'lots' },
      { waitReady: false },
    );
    const exit = await service.exited;
    expect(exit.code).toBe(1);
    const lines = service.stderr.join('').trim().split('\n');
    expect(lines).toEqual(['WORKER_CONCURRENCY="lots" is invalid: expected an integer from 1 to 100000']);
  });
});
