import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedisServer } from '../../test/support/redis-server.js';
import { BackendUnavailableError } from './errors.js';
import {
  createRedisClient,
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
      const deadline = Date.now() + 15_000;
      while ((await command.ping().catch(() => null)) !== 'PONG') {
        if (Date.now() > deadline) throw new Error('Timed out waiting for the reconnect');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await blocking.ping()).toBe('PONG');
    } finally {
      command.disconnect();
      blocking.disconnect();
    }
  });
});
