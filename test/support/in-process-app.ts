/**
 * The whole service (embedded mode, a real SQLite file in a temp dir) built in-process and
 * listening on 127.0.0.1, for tests that run real tasks through the worker without spawning a
 * process, and the mock LLM and callback receiver it talks to. Tests pass their own logger (to
 * capture lines) and resolver (to fake DNS).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { waitFor } from '../../src/dev/harness.js';
import { type MockLlm, type MockLlmOptions, startMockLlm } from '../../src/dev/mock-llm.js';
import type { TaskView } from '../../src/http/schemas.js';
import { createService, type Service, type ServiceOverrides } from '../../src/service.js';
import { createLogger, type Logger } from '../../src/shared/logger.js';
import { type CallbackReceiver, startCallbackReceiver } from './callback-receiver.js';

export interface InProcessApp {
  /** Base URL of the API, such as `http://127.0.0.1:40123`. */
  url: string;
  app: Service;
  close(): Promise<void>;
}

export interface InProcessAppOptions {
  /** Default: a silent logger. */
  logger?: Logger;
  overrides?: ServiceOverrides;
}

/**
 * Starts role `all` with `env` over test defaults (127.0.0.1, port 0, temp DATA_DIR, no rate
 * limit, silent). `OUTBOUND_THREAD` must be `on` or `off`, from `env` or from the vitest project
 * (see `WORKER_TESTS` in vitest.config.ts): left to `auto`, the path a test takes would follow
 * the machine's CPU count. A `lookup` override keeps the outbound work in-process either way.
 */
export async function startInProcessApp(
  env: Record<string, string>,
  options: InProcessAppOptions = {},
): Promise<InProcessApp> {
  const outboundThread = env.OUTBOUND_THREAD ?? process.env.OUTBOUND_THREAD;
  if (outboundThread !== 'on' && outboundThread !== 'off') {
    throw new Error(
      `OUTBOUND_THREAD is ${outboundThread ?? 'not set'} for an in-process app: pass on or off, or list ` +
        'the suite in WORKER_TESTS of vitest.config.ts to run it both ways',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'llm-webhook-test-'));
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dir,
    RATE_LIMIT: 'off',
    LOG_LEVEL: 'silent',
    ...env,
    OUTBOUND_THREAD: outboundThread,
  });
  const app = await createService(config, options.logger ?? createLogger('silent'), 'all', options.overrides);
  let url: string | null;
  try {
    url = await app.start();
  } catch (error) {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: url!,
    app,
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** {@link startInProcessApp}, closed when the calling test finishes. Call it inside a test only. */
export async function startTestApp(
  env: Record<string, string>,
  options: InProcessAppOptions = {},
): Promise<InProcessApp> {
  const app = await startInProcessApp(env, options);
  onTestFinished(() => app.close());
  return app;
}

/** A mock LLM and a callback receiver on 127.0.0.1, shared by the tests of one file. */
export interface Upstreams {
  llm: MockLlm;
  receiver: CallbackReceiver;
}

/**
 * Registers hooks that start both before the file's first test and stop them after its last.
 * Both are reset before each test rather than after it, so that whatever the previous test's
 * apps sent before {@link startTestApp} closed them is forgotten too. What it returns stands in
 * for the two from the start, so a file can name them at import time; reading a property
 * before `beforeAll` has run throws.
 */
export function useUpstreams(llmOptions: MockLlmOptions = {}): Upstreams {
  let llm: MockLlm | undefined;
  let receiver: CallbackReceiver | undefined;
  beforeAll(async () => {
    llm = await startMockLlm(llmOptions);
    receiver = await startCallbackReceiver();
  });
  afterAll(async () => {
    await llm?.close();
    await receiver?.close();
  });
  beforeEach(() => {
    llm?.reset();
    receiver?.reset();
  });
  return {
    llm: forwarding('the mock LLM', () => llm),
    receiver: forwarding('the callback receiver', () => receiver),
  };
}

/** An object whose every property is read from what `current()` returns at the time of reading. */
function forwarding<T extends object>(what: string, current: () => T | undefined): T {
  return new Proxy({} as T, {
    get: (_, property) => {
      const target = current();
      if (target === undefined) throw new Error(`${what} starts in beforeAll: use it inside tests`);
      return Reflect.get(target, property);
    },
  });
}

/** A task as `GET /tasks/:id` shows it. */
export type { TaskView };

/** Polls `GET /tasks/:id` until its status is one of `statuses`. */
export async function waitForTask(
  base: string,
  taskId: string,
  statuses: readonly string[],
  headers: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<TaskView> {
  let last = '';
  return waitFor(
    async () => {
      const response = await fetch(`${base}/tasks/${taskId}`, { headers });
      const task = (await response.json()) as TaskView;
      last = JSON.stringify(task);
      return response.status === 200 && statuses.includes(task.status) ? task : null;
    },
    () => `task ${taskId} to be ${statuses.join('|')}: it is ${last}`,
    { timeoutMs, intervalMs: 25 },
  );
}

/** POSTs `/webhook` and returns the response status and JSON body. */
export async function postWebhook(
  base: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${base}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}
