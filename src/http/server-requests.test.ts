/** buildServer: closing with requests in flight, request bodies, unknown routes and malformed requests. */
import { connect } from 'node:net';
import { Client } from 'undici';
import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../test/support/http-harness.js';
import { setup, VALID } from './server.test-support.js';

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
