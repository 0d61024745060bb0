/**
 * The redis mode's rate limits and model pauses, shared by every worker on the Redis. A rate limit
 * is a token bucket in one hash (`tokens`, `at`) updated by one Lua script on the Redis server's
 * clock, so any number of workers draw from one bucket and never overshoot; a pause is a key
 * with a time-to-live. Our own scripts rather than BullMQ's global rate limiter: that one counts
 * jobs of a whole queue (deliveries included) and neither tokens nor a model, and it would hold
 * back a conversation's jobs in the group machinery of queue/bullmq/ rather than return them.
 */
import type { Redis } from 'ioredis';
import { withRedis } from '../backends/redis/redis-connection.js';
import type { ModelPauses, RateLimiter, RateLimits } from './rate-limits.js';

/** KEYS[1]: the bucket. ARGV: max, window ms, cost. Returns 0 when taken, else the ms to wait. */
const TAKE = `
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = math.min(tonumber(ARGV[3]), max)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or max
local at = tonumber(state[2]) or now
tokens = math.min(max, tokens + math.max(0, now - at) * max / window)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) * window / max) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], window * 2)
return wait`;

/** KEYS[1]: the pause. ARGV: ms. Lengthens a pause, never shortens one. */
const PAUSE = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 1`;

interface RateCommands {
  llmwRateTake(key: string, max: number, windowMs: number, cost: number): Promise<number>;
  llmwModelPause(key: string, ms: number): Promise<number>;
}

export function createRedisRateLimits(client: Redis, keyPrefix: string): RateLimits {
  client.defineCommand('llmwRateTake', { numberOfKeys: 1, lua: TAKE });
  client.defineCommand('llmwModelPause', { numberOfKeys: 1, lua: PAUSE });
  const commands = client as unknown as RateCommands;
  const rates: RateLimiter = {
    take: (key, cost, window) =>
      withRedis('take from a rate limit', () =>
        commands.llmwRateTake(
          `${keyPrefix}rate:${key}`,
          window.max,
          window.windowMs,
          Math.max(0, Math.ceil(cost)),
        ),
      ),
  };
  const pauses: ModelPauses = {
    pause: (model, ms) =>
      withRedis('pause a model', async () => {
        await commands.llmwModelPause(`${keyPrefix}pause:${model}`, Math.max(1, Math.ceil(ms)));
      }),
    remainingMs: (model) =>
      withRedis('read a model pause', async () =>
        Math.max(0, await client.pttl(`${keyPrefix}pause:${model}`)),
      ),
  };
  return { rates, pauses };
}
