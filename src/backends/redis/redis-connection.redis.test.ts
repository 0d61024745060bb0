import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../../test/support/redis-server.js';
import { waitFor } from '../../dev/harness.js';
import { BackendUnavailableError } from '../../shared/errors.js';
import {
  createRedisClient,
  REDIS_COMMAND_TIMEOUT_MS,
  REDIS_MAX_RECONNECT_DELAY_MS,
  reconnectDelayMs,
  toBackendUnavailable,
  withRedis,
} from './redis-connection.js';

let server: RedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});

afterAll(async () => {
  await server?.stop();
});

describe('redis connection', () => {
  it('backs off between reconnects, capped, and never gives up', () => {
    expect(reconnectDelayMs(1)).toBe(50);
    expect(reconnectDelayMs(2)).toBe(100);
    expect(reconnectDelayMs(1000)).toBe(REDIS_MAX_RECONNECT_DELAY_MS);
    expect(typeof reconnectDelayMs(Number.MAX_SAFE_INTEGER)).toBe('number');
  });

  it('wraps errors as BackendUnavailableError, keeping the cause', async () => {
    const cause = new Error('connect ECONNREFUSED');
    const wrapped = toBackendUnavailable(cause, 'enqueue');
    expect(wrapped).toBeInstanceOf(BackendUnavailableError);
    expect(wrapped.code).toBe('BACKEND_UNAVAILABLE');
    expect(wrapped.cause).toBe(cause);
    expect(wrapped.message).toContain('enqueue');
    expect(toBackendUnavailable(wrapped, 'other')).toBe(wrapped);
    await expect(withRedis('slow', () => new Promise(() => {}), 50)).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
    await expect(withRedis('ok', async () => 42, 1000)).resolves.toBe(42);
  });

  it('queues commands until the first connection, then fails fast while Redis is down', async () => {
    const command = createRedisClient(server.url, { role: 'command' });
    const blocking = createRedisClient(server.url, { role: 'blocking' });
    try {
      // Sent before the connection is ready: waits for it instead of failing.
      expect(await command.ping()).toBe('PONG');
      expect(await blocking.ping()).toBe('PONG');
      expect(blocking.options.maxRetriesPerRequest).toBeNull();

      await server.stop();
      try {
        const startedAt = Date.now();
        await expect(withRedis('ping', () => command.ping())).rejects.toBeInstanceOf(BackendUnavailableError);
        expect(Date.now() - startedAt).toBeLessThan(2500);
      } finally {
        await server.restart();
      }
      await waitFor(async () => (await command.ping().catch(() => null)) === 'PONG', 'the reconnect', {
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      expect(await blocking.ping()).toBe('PONG');
    } finally {
      command.disconnect();
      blocking.disconnect();
    }
  });

  it('never sends a command later once its caller has given up on it', async () => {
    // A Redis that accepts connections but answers nothing until told to: the client's first
    // connection stays in its handshake, so commands wait in the offline queue and time out.
    const held: Socket[] = [];
    const upstreams: Socket[] = [];
    let forwarding = false;
    const forward = (socket: Socket): void => {
      const upstream = connect(server.port, '127.0.0.1');
      upstreams.push(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    };
    const gate = createServer((socket) => {
      held.push(socket);
      if (forwarding) forward(socket);
    });
    gate.listen(0, '127.0.0.1');
    await once(gate, 'listening');
    const port = (gate.address() as { port: number }).port;
    const key = `abandoned-${Date.now()}`;
    const client = createRedisClient(`redis://127.0.0.1:${port}`, { role: 'command' });
    try {
      await waitFor(() => held.length > 0, 'the first connection', { timeoutMs: 10_000 });
      await expect(withRedis('set', () => client.set(key, 'late'))).rejects.toBeInstanceOf(
        BackendUnavailableError,
      );

      forwarding = true;
      for (const socket of held) forward(socket);
      // Commands on one connection run in order: had the SET been sent on connect, GET would see it.
      expect(await client.get(key)).toBeNull();
      expect(await client.set(key, 'now')).toBe('OK');
      expect(await client.get(key)).toBe('now');
    } finally {
      client.disconnect();
      for (const socket of [...held, ...upstreams]) socket.destroy();
      gate.close();
    }
  });
  it('does not time out a command answered while this process was too busy to read the reply', async () => {
    const client = createRedisClient(server.url, { role: 'command' });
    try {
      expect(await client.ping()).toBe('PONG');
      const key = `busy-${Date.now()}`;
      const pending = Promise.all([client.set(key, 'v'), client.incr(`${key}:n`), client.get(key)]);
      // The event loop stays busy past the timeout while Redis answers at once.
      const until = Date.now() + REDIS_COMMAND_TIMEOUT_MS + 500;
      while (Date.now() < until) {
        // busy
      }
      expect(await pending).toEqual(['OK', 1, 'v']);
    } finally {
      client.disconnect();
    }
  });
});
