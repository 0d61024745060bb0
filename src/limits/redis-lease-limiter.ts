/**
 * The redis mode's leases, shared by every process on the Redis: one sorted set per key, each
 * member a lease id scored by its expiry (epoch ms, the Redis server's clock). Granting prunes the
 * expired members and adds one only below the limit, in one script, so concurrent workers never
 * overshoot. The set expires with its last lease.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { withRedis } from '../backends/redis/redis-connection.js';
import { bindScripts } from '../backends/redis/redis-scripts.js';
import type { Lease, LeaseLimiter } from './lease-limiter.js';

/** KEYS[1]: the set. ARGV: lease id, limit, ttl ms. Returns 1 when granted. */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local expires = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.max(expires, tonumber(last[2])))
return 1`;

/** KEYS[1]: the set. Returns the unexpired members' count. */
const COUNT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')`;

interface LeaseCommands {
  llmwLeaseAcquire(key: string, id: string, limit: number, ttlMs: number): Promise<number>;
  llmwLeaseCount(key: string): Promise<number>;
}

export function createRedisLeaseLimiter(client: Redis, keyPrefix: string): LeaseLimiter {
  const commands = bindScripts(client, {
    llmwLeaseAcquire: { keys: 1, lua: ACQUIRE },
    llmwLeaseCount: { keys: 1, lua: COUNT },
  }) as unknown as LeaseCommands;
  const keyOf = (key: string): string => `${keyPrefix}lease:${key}`;

  return {
    acquire: (key, limit, ttlMs) =>
      withRedis('acquire a lease', async () => {
        const id = randomUUID();
        const setKey = keyOf(key);
        const granted = await commands.llmwLeaseAcquire(setKey, id, limit, Math.max(1, Math.ceil(ttlMs)));
        if (granted !== 1) return null;
        return {
          release: () => withRedis('release a lease', async () => void (await client.zrem(setKey, id))),
        } satisfies Lease;
      }),
    count: (key) => withRedis('count leases', () => commands.llmwLeaseCount(keyOf(key))),
  };
}
