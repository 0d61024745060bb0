import { connect } from 'node:net';
import { Client } from 'undici';
import { describe, expect, it } from 'vitest';
import { buildTestServer, type TestServer } from '../../test/support/http-harness.js';

/** The server over a real in-memory SQLite store and queue; `logLines` collects what it logs. */
function setup(env: Record<string, string> = {}, routes: 'api' | 'operations' = 'api'): Promise<TestServer> {
  return buildTestServer(env, { routes });
}

describe('buildServer: closing', () => {
  it('finishes requests in flight, and answers one that arrives while closing with 503 and a detail', async () => {
    let entered: () => void = () => {};
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const { app } = await buildTestServer(
      {},
      {
        storeOverrides: {
          getTask: async () => {
            entered();
            await new Promise((resolve) => setTimeout(resolve, 300));
            return null;
          },
        },
      },
    );
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    // Two requests pipelined on one kept-alive connection: the second arrives during close.
    const client = new Client(address, { pipelining: 2 });
    try {
      const slow = client.request({ path: '/tasks/some-task', method: 'GET' });
      await inside;
      const closed = app.close();
      const late = client.request({ path: '/healthz', method: 'GET' });
      const [first, second] = await Promise.all([slow, late]);
      expect(first.statusCode).toBe(404);
      expect(await first.body.json()).toEqual({ detail: 'Task not found' });
      expect(second.statusCode).toBe(503);
      expect(await second.body.json()).toEqual({
        detail: 'Service unavailable: the server is shutting down',
      });
      await closed;
    } finally {
      await client.destroy();
    }
  });
});

const VALID = { message: 'Hello', callback_url: 'https://example.com/callback' };

describe('buildServer: bodies', () => {
  it('answers 415 with a detail for a body that is not application/json', async () => {
    const { app } = await setup();
    for (const contentType of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const response = await app.inject({
        method: 'POST',
        url: '/webhook',
        headers: { 'content-type': contentType },
        payload: 'message=hi',
      });
      expect(response.statusCode, contentType).toBe(415);
      expect(response.json()).toEqual({ detail: expect.any(String) });
    }
  });

  it('accepts application/json with a charset', async () => {
    const { app } = await setup();
    const response = await app.inject({
      method: 'POST',
      url: '/webhook',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: JSON.stringify(VALID),
    });
    expect(response.statusCode).toBe(200);
  });

  it('answers 413 with a detail for a body over BODY_LIMIT_BYTES', async () => {
    const { app } = await setup({ BODY_LIMIT_BYTES: '2048' });
    const response = await app.inject({
      method: 'POST',
      url: '/webhook',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ ...VALID, message: 'x'.repeat(3000) }),
    });
    expect(response.statusCode).toBe(413);
    expect(response.json()).toEqual({ detail: 'Request body is larger than 2048 bytes' });
  });
});

describe('buildServer: unknown routes and methods', () => {
  it('answers 404 and 405 as JSON with a detail', async () => {
    const { app } = await setup();
    const missing = await app.inject({ method: 'GET', url: '/nowhere' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ detail: 'Not Found' });

    const wrongMethod = await app.inject({ method: 'GET', url: '/webhook' });
    expect(wrongMethod.statusCode).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
    expect(wrongMethod.json()).toEqual({ detail: 'Method Not Allowed' });

    const wrongOnParam = await app.inject({ method: 'PUT', url: '/tasks/abc' });
    expect(wrongOnParam.statusCode).toBe(405);
    expect(wrongOnParam.json()).toEqual({ detail: 'Method Not Allowed' });
  });
});

describe('buildServer: malformed requests', () => {
  it('answers a URL with broken percent-encoding with 400 and a detail', async () => {
    const { app } = await setup();
    for (const url of ['/conversations/%E0%A4%A/messages', '/tasks/%']) {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(400);
      expect(response.json()).toEqual({ detail: expect.any(String) });
    }
  });

  it('answers an empty path parameter with 422', async () => {
    const { app } = await setup();
    const response = await app.inject({ method: 'GET', url: '/conversations//messages' });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({
      detail: [{ type: 'string_too_short', loc: ['path', 'conversation_id'] }],
    });
  });

  it('answers HTTP it cannot parse with 400 and a JSON detail', async () => {
    const { app } = await setup();
    const address = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    const answer = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = connect(Number(address.port), '127.0.0.1', () => {
        socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n');
      });
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('utf8');
      });
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ detail: 'Bad Request' });
  });
});

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

describe('buildServer: logging and metrics', () => {
  it('logs one line per request without headers, query or body, and never the message text at info', async () => {
    const { app, logLines } = await setup({ LOG_LEVEL: 'info', API_TOKENS: 'sekret-token' });
    await app.inject({
      method: 'POST',
      url: '/webhook?secret=query',
      payload: { ...VALID, message: 'very private words' },
      headers: { authorization: 'Bearer sekret-token', cookie: 'session=abc' },
    });
    const requestLines = logLines.filter((line) => line.msg === 'request');
    expect(requestLines).toHaveLength(1);
    expect(requestLines[0]).toMatchObject({
      method: 'POST',
      url: '/webhook',
      status: 200,
      ms: expect.any(Number),
    });
    const everything = JSON.stringify(logLines);
    expect(everything).not.toContain('sekret-token');
    expect(everything).not.toContain('session=abc');
    expect(everything).not.toContain('secret=query');
    expect(everything).not.toContain('very private words');
    expect(logLines.some((line) => line.msg === 'task accepted' && typeof line.task_id === 'string')).toBe(
      true,
    );
  });

  it('observes request durations by route pattern, not raw URL', async () => {
    const { app, metrics } = await setup();
    await app.inject({ method: 'GET', url: '/tasks/one' });
    await app.inject({ method: 'GET', url: '/tasks/two' });
    await app.inject({ method: 'GET', url: '/nowhere/at/all' });
    const { body } = await metrics.render();
    expect(body).toContain(
      'llm_webhook_http_request_duration_seconds_count{method="GET",route="/tasks/:task_id",status_code="404"} 2',
    );
    expect(body).toContain('route="unmatched"');
    expect(body).not.toContain('/nowhere');
  });
});

describe('buildServer: the operations routes of a worker process', () => {
  it('serves /healthz, /readyz and /metrics and no public API', async () => {
    const { app } = await setup({}, 'operations');
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('llm_webhook_tasks_accepted_total');
    for (const [method, url] of [
      ['POST', '/webhook'],
      ['GET', '/callback'],
      ['GET', '/tasks/x'],
      ['GET', '/docs'],
    ] as const) {
      const response = await app.inject({ method, url, payload: method === 'POST' ? VALID : undefined });
      expect(response.statusCode, `${method} ${url}`).toBe(404);
      expect(response.json()).toHaveProperty('detail');
    }
  });

  it('guards /metrics with the API tokens like the API does', async () => {
    const { app } = await setup({ API_TOKENS: 'ops-token' }, 'operations');
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const ok = await app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: 'Bearer ops-token' },
    });
    expect(ok.statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
