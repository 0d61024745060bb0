/**
 * The redis store's Lua scripts: every state change that reads before it writes, each atomic on
 * the server, and `defineStoreScripts`, which registers them on a client (redis-store.ts holds
 * the key layout they work on).
 */
import type { Redis } from 'ioredis';

/**
 * Shared by the scripts that change a task's status or count an event: the listing indexes
 * (sorted sets of `<created ms, 16 digits>:<task id>` members, all at score 0, read by range of
 * member: `tasks:<ns>:all`, `tasks:<ns>:status:<status>`, `tasks:<ns>:conv:<id>`,
 * `tasks:<ns>:dest:<destination>`), each kept alive as long as its newest member's task, and the
 * per-minute roll-ups, one hash an hour `rollup:<ns>:<hour ms>` with fields `<minute ms>:<counter>`. Their keys are derived from the task's key,
 * so they share its prefix (and its Redis Cluster slot).
 */
const PRELUDE = `
local function llmw_prefix(task_key) return string.match(task_key, '^(.*)task:[^:]*$') end
local function llmw_touch(key, expires_ms)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIREAT', key, expires_ms)
  else redis.call('PEXPIREAT', key, expires_ms, 'GT') end
end
local function llmw_bump(task_key, ns, field)
  local t = tonumber(redis.call('TIME')[1])
  local key = llmw_prefix(task_key) .. 'rollup:' .. ns .. ':' .. (math.floor(t / 3600) * 3600000)
  redis.call('HINCRBY', key, (math.floor(t / 60) * 60000) .. ':' .. field, 1)
  redis.call('EXPIRE', key, 172800)
end
local function llmw_restatus(task_key, old, new)
  if old == new then return end
  local f = redis.call('HMGET', task_key, 'namespace', 'indexMember', 'expiresAtMs')
  if not f[2] then return end
  local base = llmw_prefix(task_key) .. 'tasks:' .. f[1] .. ':status:'
  if old then redis.call('ZREM', base .. old, f[2]) end
  redis.call('ZADD', base .. new, 0, f[2])
  llmw_touch(base .. new, f[3])
end
`;

const SCRIPTS = {
  llmwStoreCreateTask: {
    keys: 2,
    lua: `
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
-- Created already past its retention: gone at once, and never listed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
local f = redis.call('HMGET', KEYS[1], 'namespace', 'conversationId', 'destination', 'indexMember', 'createdAtMs')
local base = llmw_prefix(KEYS[1]) .. 'tasks:' .. f[1] .. ':'
local t = redis.call('TIME')
local cutoff = string.format('(%016d', tonumber(t[1]) * 1000 - (tonumber(ARGV[1]) - tonumber(f[5])))
for _, key in ipairs({base .. 'all', base .. 'status:queued', base .. 'conv:' .. f[2], base .. 'dest:' .. f[3]}) do
  redis.call('ZADD', key, 0, f[4])
  llmw_touch(key, ARGV[1])
  redis.call('ZREMRANGEBYLEX', key, '-', cutoff)
end
for _, status in ipairs({'processing', 'delivering', 'completed', 'failed'}) do
  redis.call('ZREMRANGEBYLEX', base .. 'status:' .. status, '-', cutoff)
end
llmw_bump(KEYS[1], f[1], 'accepted')
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
llmw_restatus(KEYS[1], current, status)
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
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'processing')
  llmw_restatus(KEYS[1], 'queued', 'processing')
end
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
local ns = redis.call('HGET', KEYS[1], 'namespace') or ''
llmw_bump(KEYS[1], ns, ARGV[5] == '1' and 'callbackOk' or 'callbackFailed')
if ARGV[3] ~= '' then
  local old = redis.call('HGET', KEYS[1], 'status')
  redis.call('HSET', KEYS[1], 'status', ARGV[3])
  llmw_restatus(KEYS[1], old, ARGV[3])
  if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'error') else redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
  if redis.call('HSETNX', KEYS[1], 'rolledUp', '1') == 1 then llmw_bump(KEYS[1], ns, ARGV[3]) end
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
local f = redis.call('HMGET', KEYS[1], 'message', 'status', 'namespace', 'conversationId')
local message = f[1]
redis.call('RPUSH', KEYS[2], 'user\\n' .. ARGV[5] .. '\\n' .. message, 'assistant\\n' .. ARGV[5] .. '\\n' .. ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HSET', KEYS[1], 'generatedResponse', ARGV[1], 'model', ARGV[2], 'completedAt', ARGV[4],
  'status', 'delivering', 'updatedAt', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'usage', ARGV[3]) end
llmw_restatus(KEYS[1], f[2], 'delivering')
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local conversations = llmw_prefix(KEYS[1]) .. 'convs:' .. (f[3] or '')
redis.call('ZADD', conversations, now_ms, f[4] or '')
llmw_touch(conversations, now_ms + tonumber(ARGV[6]) * 1000)
if ARGV[14] ~= '' then llmw_bump(KEYS[1], f[3] or '', 'llm' .. ARGV[14]) end
return 1`,
  },
  llmwStoreFail: {
    keys: 1,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'completedAt') == 1 then return 0 end
local old = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], 'error', ARGV[1], 'completedAt', ARGV[2], 'status', 'delivering', 'updatedAt', ARGV[3])
llmw_restatus(KEYS[1], old, 'delivering')
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
    client.defineCommand(name, { numberOfKeys: script.keys, lua: PRELUDE + script.lua });
  }
  const commands = client as unknown as Record<ScriptName, ScriptFn>;
  return (name, keys, args) => commands[name].call(client, ...keys, ...args);
}
