/**
 * `npm run demo`: the whole loop in one command, with no API key and no network. Starts the
 * bundled mock LLM and the service (embedded mode, a throw-away data directory), sends three
 * messages of one conversation back to back with the service's own `/callback` as the target, and
 * prints the exchange as the callbacks arrive, in conversation order.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, stopChild, waitFor } from './harness.js';
import { startMockLlm } from './mock-llm.js';

const MESSAGES = ['Hello! My name is Ada.', 'What is the capital of France?', 'Do you remember my name?'];

interface ReceivedCallback {
  task_id?: string;
  status?: string;
  generated_response?: string;
  error?: { message?: string };
}

async function main(): Promise<void> {
  const llm = await startMockLlm({ latencyMs: 200 });
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'llm-webhook-demo-'));
  const base = `http://127.0.0.1:${port}`;
  // Built, the entry point is dist/main.js; run from source (tests), src/main.ts through tsx.
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(fromSource ? '../main.ts' : '../main.js', import.meta.url));
  const service: ChildProcess = spawn(
    process.execPath,
    [...(fromSource ? ['--import', 'tsx'] : []), entry, 'all'],
    {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dataDir,
        LLM_BASE_URL: llm.url,
        API_KEY: 'demo-key',
        LLM_MODEL: 'mock/demo-model',
        CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
        RATE_LIMIT: 'off',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  try {
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 'the service', {
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    console.log(`llm-webhook is up at ${base} (embedded mode), mock LLM at ${llm.url}\n`);

    // Sent back to back without waiting for replies: the service answers them one at a time,
    // in the order it accepted them, each prompt holding the exchanges before it.
    const taskIds: string[] = [];
    for (const message of MESSAGES) {
      const response = await fetch(`${base}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message, callback_url: `${base}/callback`, conversation_id: 'demo' }),
      });
      const body = (await response.json()) as { task_id: string; status: string };
      console.log(`POST /webhook ${response.status} ${JSON.stringify(body)}`);
      taskIds.push(body.task_id);
    }

    const received = await waitFor(
      () =>
        fetch(`${base}/callback`)
          .then((response) => response.json() as Promise<{ received: ReceivedCallback[] }>)
          .then((body) => (body.received.length >= MESSAGES.length ? body.received : null))
          .catch(() => null),
      'three callbacks',
      { timeoutMs: 30_000, intervalMs: 100 },
    );

    console.log('\nThe conversation, as delivered to POST /callback:\n');
    taskIds.forEach((taskId, index) => {
      const callback = received.find((entry) => entry.task_id === taskId);
      console.log(`  you: ${MESSAGES[index]}`);
      console.log(`  llm: ${callback?.generated_response ?? `(failed: ${callback?.error?.message})`}\n`);
    });
    const prompts = llm.requests.map((request) => request.messages.length);
    console.log(
      `Messages the LLM saw per turn: ${prompts.join(', ')} (each prompt holds the earlier exchanges)`,
    );
  } finally {
    await stopChild(service, 15_000);
    await llm.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
