/**
 * Slow clients (SPEC §6: no input makes the process hang): a client trickling its headers
 * (slowloris) or its body is answered 408 and cut off once the server's deadline passes, over
 * real sockets. The deadlines are set small here; the defaults are checked separately.
 */
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { buildTestServer } from '../../test/support/http-harness.js';
import { HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS, type ServerTimeouts } from './server.js';

async function startServer(timeouts?: ServerTimeouts) {
  const { app } = await buildTestServer({}, timeouts === undefined ? {} : { timeouts });
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  return { app, port: Number(url.port) };
}

interface SlowClientResult {
  /** Everything the server wrote before the socket closed. */
  answer: string;
  /** How many chunks the client had sent when the socket closed. */
  chunksSent: number;
  closedAfterMs: number;
}

/**
 * Opens a socket, writes `head`, then one of `drip` every `intervalMs` for as long as the socket
 * is open. Resolves once the server has closed it; rejects when it is still open at `deadlineMs`.
 */
function slowClient(
  port: number,
  head: string,
  drip: string,
  intervalMs: number,
  deadlineMs: number,
): Promise<SlowClientResult> {
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    let answer = '';
    let chunksSent = 0;
    let timer: NodeJS.Timeout | undefined;
    const socket: Socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (socket.writable) {
          socket.write(drip);
          chunksSent += 1;
        }
      }, intervalMs);
    });
    const deadline = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`the server still held the slow connection after ${deadlineMs} ms`));
    }, deadlineMs);
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8');
    });
    // A write racing the server's close may fail with EPIPE/ECONNRESET; the close decides.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(deadline);
      resolve({ answer, chunksSent, closedAfterMs: Date.now() - startedAt });
    });
  });
}

function expect408(answer: string): void {
  expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  expect(answer).toMatch(/\r\nConnection: close\r\n/i);
  expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ detail: 'Request Timeout' });
}

describe('slow clients', () => {
  const timeouts: ServerTimeouts = { headersTimeoutMs: 600, requestTimeoutMs: 1500, checkIntervalMs: 100 };

  it('answers 408 and closes a connection whose headers trickle in (slowloris)', async () => {
    const { port } = await startServer(timeouts);
    const result = await slowClient(
      port,
      'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n',
      'X-Slow: 1\r\n',
      50,
      15_000,
    );
    expect408(result.answer);
    // It was still sending when it was cut off: the deadline, not a parse error, ended it.
    expect(result.chunksSent).toBeGreaterThan(0);
  });

  it('answers 408 and closes a connection whose body trickles in', async () => {
    const { port } = await startServer(timeouts);
    const head =
      'POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
      'Content-Length: 100000\r\n\r\n{"message":"';
    const result = await slowClient(port, head, 'a', 50, 15_000);
    expect408(result.answer);
    expect(result.chunksSent).toBeGreaterThan(0);
  });

  it('still serves a prompt client, on the same settings, several requests on one connection', async () => {
    const { port } = await startServer(timeouts);
    const answer = await new Promise<string>((resolve, reject) => {
      let received = '';
      const socket = connect(port, '127.0.0.1', () => {
        socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      });
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('utf8');
      });
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    expect(answer.match(/HTTP\/1\.1 200 /g)).toHaveLength(2);
    expect(answer).not.toContain('408');
  });

  it('uses bounded deadlines by default', async () => {
    const { app } = await startServer();
    expect(app.server.headersTimeout).toBe(HEADERS_TIMEOUT_MS);
    expect(app.server.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(HEADERS_TIMEOUT_MS).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS);
    expect(REQUEST_TIMEOUT_MS).toBeLessThanOrEqual(60_000);
  });
});
