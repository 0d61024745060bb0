/**
 * The redis store's Lua scripts: every state change that reads before it writes, each atomic on
 * the server, and `defineStoreScripts`, which registers them on a client (redis-store.ts holds
 * the key layout they work on).
 */
import type { Redis } from 'ioredis';

const SCRIPTS = {
  llmwStoreCreateTask: {
    keys: 2,
    lua: `
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1`,
  },
  llmwStoreSetStatus: {
    keys: 1,
    lua: `
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
local status = ARGV[1]
if (current == 'completed' or current == 'failed') and (status == 'queued' or status == 'processing') then
  return 0
end
redis.call('HSET', KEYS[1], 'status', status, 'updatedAt', ARGV[2])
if ARGV[3] == 'set' then
  redis.call('HSET', KEYS[1], 'error', ARGV[4])
elseif ARGV[3] == 'clear' then
  redis.call('HDEL', KEYS[1], 'error')
end
return 1`,
  },
  llmwStoreLlmAttempt: {
    keys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'llmAttempts', 1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[1])
if redis.call('HGET', KEYS[1], 'status') == 'queued' then redis.call('HSET', KEYS[1], 'status', 'processing') end
return 1`,
  },
  llmwStoreDelivery: {
    keys: 2,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'expiresAtMs'))
redis.call('HINCRBY', KEYS[1], 'callbackAttempts', 1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[3])
  if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'error') else redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
end
return 1`,
  },
  // The generation ends once: the user message and the reply enter the history together with
  // the task update, or nothing happens (a task that already has completedAt).
  // The usage roll-ups (KEYS[3] the day's by model and conversation, KEYS[4..5] the day's and the
  // month's totals) are added to in the same step, so a task's usage is counted exactly once.
  llmwStoreComplete: {
    keys: 5,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'completedAt') == 1 then return 0 end
local field = ARGV[8]
local amounts = { r = 1, p = tonumber(ARGV[9]), c = tonumber(ARGV[10]), t = tonumber(ARGV[11]), n = tonumber(ARGV[12]) }
for metric, amount in pairs(amounts) do
  redis.call('HINCRBY', KEYS[3], metric .. field, amount)
  redis.call('HINCRBY', KEYS[4], metric, amount)
  redis.call('HINCRBY', KEYS[5], metric, amount)
end
for i = 3, 5 do redis.call('EXPIRE', KEYS[i], ARGV[13]) end
local message = redis.call('HGET', KEYS[1], 'message')
redis.call('RPUSH', KEYS[2], 'user\\n' .. ARGV[5] .. '\\n' .. message, 'assistant\\n' .. ARGV[5] .. '\\n' .. ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[1], 'generatedResponse', ARGV[1], 'model', ARGV[2], 'completedAt', ARGV[4],
  'status', 'delivering', 'updatedAt', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'usage', ARGV[3]) end
return 1`,
  },
  llmwStoreFail: {
    keys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'completedAt') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'error', ARGV[1], 'completedAt', ARGV[2], 'status', 'delivering', 'updatedAt', ARGV[3])
return 1`,
  },
  // SET NX EX semantics, plus the answer for a key that is already claimed.
  llmwStoreClaim: {
    keys: 1,
    lua: `
local existing = redis.call('HMGET', KEYS[1], 'fingerprint', 'taskId')
if existing[1] then
  if existing[1] == ARGV[1] then return {'replay', existing[2]} end
  return {'conflict', existing[2]}
end
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'taskId', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'created'}`,
  },
  llmwStoreRelease: {
    keys: 1,
    lua: `
if redis.call('HGET', KEYS[1], 'taskId') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  },
} as const;

export type ScriptName = keyof typeof SCRIPTS;
export type ScriptArg = string | number;
type ScriptFn = (...args: ScriptArg[]) => Promise<unknown>;

/** Registers the scripts on `client`; returns the function that runs one by name. */
export function defineStoreScripts(
  client: Redis,
): (name: ScriptName, keys: string[], args: ScriptArg[]) => Promise<unknown> {
  for (const [name, script] of Object.entries(SCRIPTS)) {
    client.defineCommand(name, { numberOfKeys: script.keys, lua: script.lua });
  }
  const commands = client as unknown as Record<ScriptName, ScriptFn>;
  return (name, keys, args) => commands[name].call(client, ...keys, ...args);
}
