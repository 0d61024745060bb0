/** The service in one process against a mock LLM that prices some models, for the SPEC §10 suites. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { expect, onTestFinished } from 'vitest';
import { startTestApp, type Upstreams, useUpstreams } from '../test/support/in-process-app.js';
import type { MockLlmOptions } from './dev/mock-llm.js';
import { createLogger, type Logger } from './shared/logger.js';

export const TOKEN_A = 'token-a-0123456789abcdef';
export const TOKEN_B = 'token-b-0123456789abcdef';
export const asA = { authorization: `Bearer ${TOKEN_A}` };
export const asB = { authorization: `Bearer ${TOKEN_B}` };

/** `mock/priced` reports `usage.cost` (2 USD per million tokens); `mock/unpriced` reports none. */
export const PRICED = 'mock/priced';
export const UNPRICED = 'mock/unpriced';

export interface LlmSuite extends Upstreams {
  /** Starts the service against the upstreams; `dataDir` keeps its SQLite file across starts. */
  startApp(
    env?: Record<string, string>,
    dataDir?: string,
    logger?: Logger,
  ): Promise<{ url: string; close(): Promise<void> }>;
  /** A data directory removed when the test ends. */
  dataDir(): string;
}

export function useLlmSuite(llmOptions: MockLlmOptions = {}): LlmSuite {
  const upstreams = useUpstreams({
    costPerMillionTokens: (model) => (model === UNPRICED || model.startsWith('openai/') ? null : 2),
    ...llmOptions,
  });
  return {
    ...upstreams,
    llm: upstreams.llm,
    receiver: upstreams.receiver,
    async startApp(env = {}, dataDir, logger) {
      const app = await startTestApp(
        {
          API_KEY: 'test-key',
          LLM_BASE_URL: upstreams.llm.url,
          LLM_MODEL: PRICED,
          LLM_RETRY_SCHEDULE: '50ms,50ms',
          CALLBACK_RETRY_SCHEDULE: '50ms,50ms,50ms',
          CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
          ...(dataDir === undefined ? {} : { DATA_DIR: dataDir }),
          ...env,
        },
        logger === undefined ? {} : { logger },
      );
      return { url: app.url, close: () => app.close() };
    },
    dataDir() {
      const dir = mkdtempSync(join(tmpdir(), 'llm-webhook-llm-'));
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
  };
}

/** A logger at `info` whose lines are kept, parsed, in `lines`. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: createLogger('info', sink), lines };
}

/** POSTs /webhook; answers the status, the JSON body and the headers. */
export async function send(
  base: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${base}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    json: (await response.json()) as Record<string, unknown>,
    headers: response.headers,
  };
}

/** POSTs /webhook and expects it accepted; answers the task id. */
export async function accept(
  base: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  const answer = await send(base, body, headers);
  expect(answer.status, JSON.stringify(answer.json)).toBe(200);
  return answer.json.task_id as string;
}

export async function getJson<T>(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<T> {
  const response = await fetch(`${base}${path}`, { headers });
  expect(response.status, path).toBe(200);
  return (await response.json()) as T;
}
