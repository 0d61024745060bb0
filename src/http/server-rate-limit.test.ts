/** buildServer: the rate limit, per address or per token, with its headers. */
import { describe, expect, it } from 'vitest';
import type { TestServer } from '../../test/support/http-harness.js';
import { setup, VALID } from './server.test-support.js';

describe('buildServer: rate limit', () => {
  it('answers 429 on the 6th request in a minute, with Retry-After and RateLimit-* headers', async () => {
    const { app } = await setup({ RATE_LIMIT: '5/minute' });
    for (let n = 1; n <= 5; n++) {
      const response = await app.inject({ method: 'POST', url: '/webhook', payload: VALID });
      expect(response.statusCode).toBe(200);
      expect(response.headers['ratelimit-limit']).toBe('5');
      expect(response.headers['ratelimit-remaining']).toBe(String(5 - n));
      expect(Number(response.headers['ratelimit-reset'])).toBeGreaterThan(0);
    }
    const limited = await app.inject({ method: 'POST', url: '/webhook', payload: VALID });
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({ detail: 'Rate limit exceeded: 5 per 1 minute' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(limited.headers['ratelimit-limit']).toBe('5');
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(Number(limited.headers['ratelimit-reset'])).toBeGreaterThan(0);

    // Another client is not limited; probes never are.
    const other = await app.inject({
      method: 'POST',
      url: '/webhook',
      payload: VALID,
      remoteAddress: '203.0.113.9',
    });
    expect(other.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).headers['ratelimit-limit']).toBeUndefined();
  });

  it('limits POST /callback too', async () => {
    const { app } = await setup({ RATE_LIMIT: '2/minute' });
    const statuses: number[] = [];
    for (let n = 0; n < 3; n++) {
      statuses.push(
        (await app.inject({ method: 'POST', url: '/callback', payload: { generated_response: 'x' } }))
          .statusCode,
      );
    }
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('honours X-Forwarded-For only with TRUST_PROXY', async () => {
    const spoofed = async (app: TestServer['app'], forwardedFor: string) =>
      app.inject({
        method: 'POST',
        url: '/callback',
        payload: {},
        headers: { 'x-forwarded-for': forwardedFor },
      });
    const untrusted = await setup({ RATE_LIMIT: '1/minute' });
    expect((await spoofed(untrusted.app, '198.51.100.1')).statusCode).toBe(200);
    expect((await spoofed(untrusted.app, '198.51.100.2')).statusCode).toBe(429);

    const trusted = await setup({ RATE_LIMIT: '1/minute', TRUST_PROXY: 'true' });
    expect((await spoofed(trusted.app, '198.51.100.1')).statusCode).toBe(200);
    expect((await spoofed(trusted.app, '198.51.100.2')).statusCode).toBe(200);
    expect((await spoofed(trusted.app, '198.51.100.1')).statusCode).toBe(429);
  });

  it('counts per token when tokens are on, whatever the address', async () => {
    const { app } = await setup({ RATE_LIMIT: '1/minute', API_TOKENS: 'token-a,token-b' });
    const post = (token: string) =>
      app.inject({
        method: 'POST',
        url: '/webhook',
        payload: VALID,
        headers: { authorization: `Bearer ${token}` },
      });
    expect((await post('token-a')).statusCode).toBe(200);
    expect((await post('token-b')).statusCode).toBe(200);
    expect((await post('token-a')).statusCode).toBe(429);
  });

  it('sends no rate-limit headers when RATE_LIMIT is off', async () => {
    const { app } = await setup({ RATE_LIMIT: 'off' });
    for (let n = 0; n < 8; n++) {
      const response = await app.inject({ method: 'POST', url: '/callback', payload: {} });
      expect(response.statusCode).toBe(200);
      expect(response.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});
