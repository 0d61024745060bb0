import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CallbackSender, createCallbackSender } from './send-callback.js';
import { createSsrfPolicy } from './ssrf/allow-list.js';

interface Hit {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real HTTP server on 127.0.0.1 whose answer per path is chosen by the test. */
async function startTarget(): Promise<{
  server: Server;
  port: number;
  hits: Hit[];
  connections: () => number;
  close: () => Promise<void>;
}> {
  const hits: Hit[] = [];
  let connections = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      hits.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = Number(/^\/status\/(\d+)/.exec(path)?.[1] ?? 200);
      if (path === '/hang') return; // never answers
      if (path === '/redirect') {
        res.writeHead(302, { location: '/status/200' }).end();
        return;
      }
      if (path === '/busy') {
        res.writeHead(429, { 'retry-after': '7' }).end('slow down');
        return;
      }
      if (path === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('x'.repeat(1024 * 1024));
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  server.on('connection', () => {
    connections += 1;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    hits,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A resolver with fixed answers, standing in for DNS. */
function fixedDns(answers: Record<string, string>): LookupFunction {
  return (hostname, options, callback) => {
    const address = answers[hostname];
    if (address === undefined) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
    } else if (options.all) {
      callback(null, [{ address, family: 4 }]);
    } else {
      callback(null, address, 4);
    }
  };
}

const loopbackAllowed = createSsrfPolicy({
  callbackAllowPrivate: false,
  callbackAllowedHosts: ['127.0.0.1'],
});
const strict = createSsrfPolicy({ callbackAllowPrivate: false, callbackAllowedHosts: [] });

describe('createCallbackSender', () => {
  let target: Awaited<ReturnType<typeof startTarget>>;
  let sender: CallbackSender;
  let base: string;

  beforeAll(async () => {
    target = await startTarget();
    base = `http://127.0.0.1:${target.port}`;
    sender = createCallbackSender({
      timeoutMs: 10_000,
      policy: loopbackAllowed,
      userAgent: 'llm-webhook/test',
      lookup: fixedDns({ 'callback.test': '127.0.0.1' }),
    });
  });

  afterAll(async () => {
    await sender.close();
    await target.close();
  });

  it('delivers on 200 with the JSON body, content type, user agent and given headers', async () => {
    const body = JSON.stringify({ task_id: 't-1', generated_response: 'hi' });
    const outcome = await sender.send(`${base}/status/200?x=1`, body, { 'Webhook-Id': 't-1' });
    expect(outcome).toMatchObject({ type: 'delivered', statusCode: 200 });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
    const hit = target.hits.find((h) => h.path === '/status/200?x=1');
    expect(hit?.body).toBe(body);
    expect(hit?.headers['content-type']).toBe('application/json');
    expect(hit?.headers['user-agent']).toBe('llm-webhook/test');
    expect(hit?.headers['webhook-id']).toBe('t-1');
  });

  it('counts any 2xx as delivered', async () => {
    expect(await sender.send(`${base}/status/204`, '{}', {})).toMatchObject({
      type: 'delivered',
      statusCode: 204,
    });
  });

  it('retries on 500', async () => {
    const outcome = await sender.send(`${base}/status/500`, '{}', {});
    expect(outcome).toMatchObject({ type: 'retry', statusCode: 500 });
  });

  it('passes Retry-After on as retryAfterMs', async () => {
    expect(await sender.send(`${base}/busy`, '{}', {})).toMatchObject({
      type: 'retry',
      statusCode: 429,
      retryAfterMs: 7_000,
    });
  });

  it('fails at once on 410 Gone', async () => {
    const outcome = await sender.send(`${base}/status/410`, '{}', {});
    expect(outcome).toMatchObject({ type: 'failed', statusCode: 410 });
    expect(outcome.type === 'failed' && outcome.error).toMatch(/gone/i);
  });

  it('does not follow a redirect', async () => {
    const before = target.hits.filter((h) => h.path === '/status/200').length;
    const outcome = await sender.send(`${base}/redirect`, '{}', {});
    expect(outcome).toMatchObject({
      type: 'retry',
      statusCode: 302,
      error: expect.stringMatching(/redirect/),
    });
    expect(target.hits.filter((h) => h.path === '/status/200').length).toBe(before);
  });

  it('drains a large response body and still delivers', async () => {
    expect(await sender.send(`${base}/big`, '{}', {})).toMatchObject({ type: 'delivered', statusCode: 200 });
  });

  it('turns a target that never answers into a retry after the timeout', async () => {
    const impatient = createCallbackSender({
      timeoutMs: 300,
      policy: loopbackAllowed,
      userAgent: 'llm-webhook/test',
    });
    try {
      const outcome = await impatient.send(`${base}/hang`, '{}', {});
      expect(outcome).toMatchObject({
        type: 'retry',
        error: expect.stringMatching(/timed out after 300 ms/),
      });
      expect(outcome.durationMs).toBeGreaterThanOrEqual(250);
    } finally {
      await impatient.close();
    }
  });

  it('turns a refused connection into a retry with the error', async () => {
    const closed = await startTarget();
    await closed.close();
    const outcome = await sender.send(`http://127.0.0.1:${closed.port}/`, '{}', {});
    expect(outcome).toMatchObject({ type: 'retry', error: expect.stringMatching(/ECONNREFUSED/) });
  });

  it('connects to a name through the lookup', async () => {
    const outcome = await sender.send(`http://callback.test:${target.port}/status/201`, '{}', {});
    expect(outcome).toMatchObject({ type: 'delivered', statusCode: 201 });
  });

  it('fails a URL that cannot be parsed', async () => {
    expect(await sender.send('not a url', '{}', {})).toMatchObject({ type: 'failed' });
  });

  it('fails a forbidden literal address without connecting (default policy)', async () => {
    const guarded = createCallbackSender({ timeoutMs: 1_000, policy: strict, userAgent: 'llm-webhook/test' });
    try {
      const connectionsBefore = target.connections();
      for (const url of [`${base}/status/200`, `http://[::ffff:127.0.0.1]:${target.port}/`]) {
        const outcome = await guarded.send(url, '{}', {});
        expect(outcome).toMatchObject({ type: 'failed', error: expect.stringMatching(/forbidden/i) });
      }
      expect(await guarded.send(`http://localhost:${target.port}/`, '{}', {})).toMatchObject({
        type: 'failed',
      });
      expect(target.connections()).toBe(connectionsBefore);
    } finally {
      await guarded.close();
    }
  });

  it('fails a name that resolves to a blocked address, and never connects', async () => {
    const guarded = createCallbackSender({
      timeoutMs: 1_000,
      policy: strict,
      userAgent: 'llm-webhook/test',
      lookup: fixedDns({ 'evil.test': '10.0.0.5', 'rebound.test': '127.0.0.1' }),
    });
    try {
      const connectionsBefore = target.connections();
      const evil = await guarded.send('http://evil.test/hook', '{}', {});
      expect(evil).toMatchObject({ type: 'failed', error: expect.stringMatching(/forbidden.*10\.0\.0\.5/i) });
      const rebound = await guarded.send(`http://rebound.test:${target.port}/status/200`, '{}', {});
      expect(rebound).toMatchObject({
        type: 'failed',
        error: expect.stringMatching(/forbidden.*127\.0\.0\.1/i),
      });
      expect(target.connections()).toBe(connectionsBefore);
    } finally {
      await guarded.close();
    }
  });

  it('reuses connections between attempts', async () => {
    const own = await startTarget();
    const pooled = createCallbackSender({
      timeoutMs: 1_000,
      policy: loopbackAllowed,
      userAgent: 'llm-webhook/test',
    });
    try {
      for (let i = 0; i < 6; i++) {
        expect(await pooled.send(`http://127.0.0.1:${own.port}/status/200`, '{}', {})).toMatchObject({
          type: 'delivered',
        });
      }
      // Without keep-alive this would be one connection per attempt.
      expect(own.connections()).toBeLessThanOrEqual(2);
    } finally {
      await pooled.close();
      await own.close();
    }
  });
});
