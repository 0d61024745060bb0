/**
 * The redis mode's rate limits and model pauses, shared by every worker on the Redis. A rate limit
 * is a token bucket in one hash (`tokens`, `at`) updated by one Lua script on the Redis server's
 * clock, so any number of workers draw from one bucket and never overshoot; a pause is a key
 * with a time-to-live, announced on a channel as it is set. With a subscriber connection, each
 * process keeps the pauses it heard of and reads a model's key once per subscription (for a
 * pause set before it listened), so the check before every LLM call needs no round trip. Our
 * own scripts rather than BullMQ's global rate limiter: that one counts
 * jobs of a whole queue (deliveries included) and neither tokens nor a model, and it would hold
 * back a conversation's jobs in the group machinery of queue/bullmq/ rather than return them.
 */
import type { Redis } from 'ioredis';
import { withRedis } from '../backends/redis/redis-connection.js';
import { bindScripts } from '../backends/redis/redis-scripts.js';
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

/**
 * KEYS[1]: the pause. ARGV: ms, channel, model. Lengthens a pause, never shortens one, and
 * announces a lengthened one on the channel as "<ms> <model>".
 */
const PAUSE = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[1] .. ' ' .. ARGV[3])
end
return 1`;

interface RateCommands {
  llmwRateTake(key: string, max: number, windowMs: number, cost: number): Promise<number>;
  llmwModelPause(key: string, ms: number, channel: string, model: string): Promise<number>;
}

/**
 * `subscriber` opens a connection of its own (put in subscriber mode) through which pauses set by
 * any process arrive, at the first pause or check (so a process that makes no LLM call opens
 * none); without it, every check reads the pause's key.
 */
export function createRedisRateLimits(
  client: Redis,
  keyPrefix: string,
  subscriber?: () => Redis,
): RateLimits {
  const commands = bindScripts(client, {
    llmwRateTake: { keys: 1, lua: TAKE },
    llmwModelPause: { keys: 1, lua: PAUSE },
  }) as unknown as RateCommands;
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
  const channel = `${keyPrefix}pauses`;
  let connection: Redis | null = null;
  let listening: HeardPauses | null = null;
  const heard = (): HeardPauses | null => {
    if (subscriber === undefined) return null;
    if (listening === null) {
      connection = subscriber();
      listening = listenForPauses(connection, channel);
    }
    return listening;
  };
  const readKey = (model: string): Promise<number> =>
    withRedis('read a model pause', async () => Math.max(0, await client.pttl(`${keyPrefix}pause:${model}`)));
  const pauses: ModelPauses = {
    pause: (model, ms) =>
      withRedis('pause a model', async () => {
        const pauseMs = Math.max(1, Math.ceil(ms));
        await commands.llmwModelPause(`${keyPrefix}pause:${model}`, pauseMs, channel, model);
        heard()?.note(model, pauseMs);
      }),
    remainingMs: async (model) => {
      const pauses = heard();
      if (pauses === null) return readKey(model);
      const known = pauses.remainingMs(model);
      if (known !== null) return known;
      const since = pauses.subscription();
      const ms = await readKey(model);
      pauses.note(model, ms, since);
      return ms;
    },
  };
  return { rates, pauses, close: async () => connection?.disconnect() };
}

interface HeardPauses {
  /** What this process knows of `model`'s pause: ms left, 0, or null when the key must be read. */
  remainingMs(model: string): number | null;
  /** The current subscription (null while not subscribed), to pass back to `note`. */
  subscription(): number | null;
  /** Records a pause of `ms` from now (0: none), read during `subscription` when given. */
  note(model: string, ms: number, subscription?: number | null): void;
}

function listenForPauses(subscriber: Redis, channel: string): HeardPauses {
  const untilMs = new Map<string, number>();
  /** Models whose key was read during the subscription numbered as the value. */
  const read = new Map<string, number>();
  let subscription: number | null = null;
  let subscriptions = 0;

  const subscribe = (): void => {
    subscriber.subscribe(channel).then(
      () => {
        subscriptions += 1;
        subscription = subscriptions;
      },
      () => {}, // Retried on the next 'ready'.
    );
  };
  subscriber.on('ready', subscribe);
  subscriber.on('close', () => {
    subscription = null;
  });
  subscriber.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    const space = message.indexOf(' ');
    const ms = Number(message.slice(0, space));
    if (space > 0 && Number.isFinite(ms)) note(message.slice(space + 1), ms);
  });
  if (subscriber.status === 'ready') subscribe();

  const note = (model: string, ms: number, during?: number | null): void => {
    if (ms > 0) untilMs.set(model, Math.max(untilMs.get(model) ?? 0, Date.now() + ms));
    if (during !== undefined && during !== null && during === subscription) read.set(model, during);
  };

  return {
    remainingMs(model) {
      const left = (untilMs.get(model) ?? 0) - Date.now();
      if (left > 0) return left;
      if (untilMs.has(model)) untilMs.delete(model);
      return subscription !== null && read.get(model) === subscription ? 0 : null;
    },
    subscription: () => subscription,
    note,
  };
}
