/** The webhook route's test server, a valid body and a POST, shared by the webhook test files. */
import { buildTestServer, type TestServer } from '../../../test/support/http-harness.js';
import type { Store } from '../../store/store.js';

/** The server with messages of at most 50 characters; `override` replaces store methods. */
export function setup(env: Record<string, string> = {}, override: Partial<Store> = {}): Promise<TestServer> {
  return buildTestServer({ MESSAGE_MAX_CHARS: '50', ...env }, { storeOverrides: override });
}

export const VALID = { message: 'Hello', callback_url: 'https://example.com/callback' };

export async function postWebhook(
  app: TestServer['app'],
  payload: unknown,
  headers: Record<string, string> = {},
) {
  return app.inject({ method: 'POST', url: '/webhook', payload: payload as object, headers });
}
