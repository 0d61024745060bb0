/** The service started in one process against the mock LLM and callback receiver, for the service test files. */
import { expect } from 'vitest';
import { startTestApp, type Upstreams, useUpstreams } from '../test/support/in-process-app.js';

export const SECRET = `whsec_${Buffer.from('a test secret of enough length!!').toString('base64')}`;

export interface ServiceUpstreams extends Upstreams {
  /** Starts the service (embedded mode) against the upstreams; answers its base URL. */
  startApp(env?: Record<string, string>): Promise<string>;
}

/** Registers the upstreams' hooks in the calling file (see {@link useUpstreams}). */
export function useServiceUpstreams(): ServiceUpstreams {
  const { llm, receiver } = useUpstreams();
  async function startApp(env: Record<string, string> = {}): Promise<string> {
    const app = await startTestApp({
      API_KEY: 'test-key',
      LLM_BASE_URL: llm.url,
      LLM_MODEL: 'mock/primary',
      LLM_RETRY_SCHEDULE: '50ms,50ms',
      CALLBACK_RETRY_SCHEDULE: '50ms,50ms,50ms',
      CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
      ...env,
    });
    return app.url;
  }
  return { llm, receiver, startApp };
}

export async function post(base: string, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${base}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(200);
  const json = (await response.json()) as { task_id: string; status: string };
  expect(json.status).toBe('Processing');
  return json.task_id;
}
