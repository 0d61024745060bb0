/** The server and a valid webhook body, shared by the buildServer test files. */
import { buildTestServer, type TestServer } from '../../test/support/http-harness.js';

/** The server over a real in-memory SQLite store and queue; `logLines` collects what it logs. */
export function setup(
  env: Record<string, string> = {},
  routes: 'api' | 'operations' = 'api',
): Promise<TestServer> {
  return buildTestServer(env, { routes });
}

export const VALID = { message: 'Hello', callback_url: 'https://example.com/callback' };
