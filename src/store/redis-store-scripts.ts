/**
 * The redis store's Lua scripts: every state change that reads before it writes, each atomic on
 * the server, and `defineStoreScripts`, which registers them on a client (redis-store.ts holds
 * the key layout they work on).
 */
import type { Redis } from 'ioredis';
import { bindScripts, type ScriptArg, type ScriptSource } from '../backends/redis/redis-scripts.js';

/**
 * Shared by the scripts that change a task's status: the listing indexes (sorted sets of
 * `<created ms, 16 digits>:<task id>` members, all at score 0, read by range of member:
 * `tasks:<ns>:all`, `tasks:<ns>:status:<status>`, `tasks:<ns>:conv:<id>`,
 * `tasks:<ns>:dest:<destination>`), each kept alive as long as its newest member's task (and up to
 * an hour more). Their keys are derived from the task's key, so they share its prefix (and its
 * Redis Cluster slot). The per-minute roll-ups are counted by the caller from what the scripts
 * return (rollup-counts.ts).
 */
const PRELUDE = `
local function llmw_prefix(task_key) return string.match(task_key, '^(.*)task:[^:]*$') end
-- The server's clock: unix seconds and milliseconds.
local function llmw_now()
  local t = redis.call('TIME')
  return tonumber(t[1]), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2])
end
-- Keeps key alive until expires_ms at least, and then an hour more, so the touches of the next
-- hour (members moved in any order) are one read each.
local function llmw_touch(key, expires_ms)
  local until_ms = tonumber(expires_ms)
  if redis.call('PEXPIRETIME', key) < until_ms then redis.call('PEXPIREAT', key, until_ms + 3600000) end
end
-- Moves the task's index member from the set of status old to that of new.
local function llmw_restatus(task_key, ns, member, expires_ms, old, new)
  if old == new or not member then return end
  local base = llmw_prefix(task_key) .. 'tasks:' .. (ns or '') .. ':status:'
  if old then redis.call('ZREM', base .. old, member) end
  redis.call('ZADD', base .. new, 0, member)
  llmw_touch(base .. new, expires_ms)
end
`;

/** The task fields the status-changing scripts read first, in this order. */
const TASK_FIELDS = `'status', 'namespace', 'indexMember', 'expiresAtMs'`;

const SCRIPTS = {
  llmwStoreCreateTask: {
    keys: 2,
    lua: `
local now_s, now_ms, now_us = llmw_now()
redis.call('DEL', KEYS[1], KEYS[2])
-- Created already past its retention: gone at once, never listed nor counted.
if tonumber(ARGV[1]) <= now_ms then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
local f = {}
for i = 2, #ARGV - 1, 2 do f[ARGV[i]] = ARGV[i + 1] end
local ns = f['namespace'] or ''
local base = llmw_prefix(KEYS[1]) .. 'tasks:' .. ns .. ':'
local sets = {base .. 'all', base .. 'status:queued', base .. 'conv:' .. f['conversationId'], base .. 'dest:' .. f['destination']}
for _, key in ipairs(sets) do
  redis.call('ZADD', key, 0, f['indexMember'])
  llmw_touch(key, ARGV[1])
end
-- The members of expired tasks go, at one create in 16 (listings bound their range anyway).
if now_us % 16 == 0 then
  local cutoff = string.format('(%016d', now_s * 1000 - (tonumber(ARGV[1]) - tonumber(f['createdAtMs'])))
  for _, key in ipairs(sets) do redis.call('ZREMRANGEBYLEX', key, '-', cutoff) end
  for _, status in ipairs({'processing', 'delivering', 'completed', 'failed'}) do
    redis.call('ZREMRANGEBYLEX', base .. 'status:' .. status, '-', cutoff)
  end
end
return 1`,
  },
  llmwStoreSetStatus: {
    keys: 1,
    lua: `
local f = redis.call('HMGET', KEYS[1], ${TASK_FIELDS})
local current = f[1]
if not current then return 0 end
local status = ARGV[1]
if (current == 'completed' or current == 'failed') and (status == 'queued' or status == 'processing') then
  return 0
end
if ARGV[3] == 'set' then
  redis.call('HSET', KEYS[1], 'status', status, 'updatedAt', ARGV[2], 'error', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'status', status, 'updatedAt', ARGV[2])
  if ARGV[3] == 'clear' then redis.call('HDEL', KEYS[1], 'error') end
end
llmw_restatus(KEYS[1], f[2], f[3], f[4], current, status)
return 1`,
  },
  llmwStoreLlmAttempt: {
    keys: 1,
    lua: `
local f = redis.call('HMGET', KEYS[1], ${TASK_FIELDS})
if not f[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'llmAttempts', 1)
if f[1] == 'queued' then
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[1], 'status', 'processing')
  llmw_restatus(KEYS[1], f[2], f[3], f[4], 'queued', 'processing')
else
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[1])
end
return 1`,
  },
  llmwStoreDelivery: {
    keys: 2,
    lua: `
local f = redis.call('HMGET', KEYS[1], ${TASK_FIELDS}, 'error', 'rolledUp')
if not f[1] then return 0 end
if redis.call('RPUSH', KEYS[2], ARGV[1]) == 1 then redis.call('PEXPIREAT', KEYS[2], f[4]) end
redis.call('HINCRBY', KEYS[1], 'callbackAttempts', 1)
local ns = f[2] or ''
if ARGV[3] == '' then
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
  return {ns, 0}
end
local fields = {'updatedAt', ARGV[2], 'status', ARGV[3]}
if ARGV[4] ~= '' then
  table.insert(fields, 'error')
  table.insert(fields, ARGV[4])
end
if not f[6] then
  table.insert(fields, 'rolledUp')
  table.insert(fields, '1')
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[4] == '' and f[5] then redis.call('HDEL', KEYS[1], 'error') end
llmw_restatus(KEYS[1], f[2], f[3], f[4], f[1], ARGV[3])
-- The namespace, and 1 when this is the task's first final status (the one roll-ups count).
return {ns, f[6] and 0 or 1}`,
  },
  // The generation ends once: the user message and the reply enter the history together with
  // the task update, or nothing happens (a task that already has completedAt).
  // The usage roll-ups (KEYS[3] the day's by model and conversation, KEYS[4..5] the day's and the
  // month's totals of tokens and cost) are added to in the same step, so a task's usage is counted exactly once;
  // each gets its expiry with its first request.
  llmwStoreComplete: {
    keys: 5,
    lua: `
local f = redis.call('HMGET', KEYS[1], ${TASK_FIELDS}, 'message', 'conversationId', 'completedAt')
if not f[1] or f[7] then return 0 end
local field = ARGV[8]
if redis.call('HINCRBY', KEYS[3], 'r' .. field, 1) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[13]) end
local amounts = { p = tonumber(ARGV[9]), c = tonumber(ARGV[10]), t = tonumber(ARGV[11]), n = tonumber(ARGV[12]) }
for metric, amount in pairs(amounts) do
  if amount ~= 0 then redis.call('HINCRBY', KEYS[3], metric .. field, amount) end
end
-- The totals hold what budgets count: tokens and cost.
for i = 4, 5 do
  for _, metric in ipairs({'t', 'n'}) do
    if amounts[metric] ~= 0 and redis.call('HINCRBY', KEYS[i], metric, amounts[metric]) == amounts[metric] then
      redis.call('EXPIRE', KEYS[i], ARGV[13])
    end
  end
end
redis.call('RPUSH', KEYS[2], 'user\\n' .. ARGV[5] .. '\\n' .. f[5], 'assistant\\n' .. ARGV[5] .. '\\n' .. ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[7]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'generatedResponse', ARGV[1], 'model', ARGV[2], 'completedAt', ARGV[4],
    'status', 'delivering', 'updatedAt', ARGV[5], 'usage', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'generatedResponse', ARGV[1], 'model', ARGV[2], 'completedAt', ARGV[4],
    'status', 'delivering', 'updatedAt', ARGV[5])
end
llmw_restatus(KEYS[1], f[2], f[3], f[4], f[1], 'delivering')
local _, now_ms = llmw_now()
local conversations = llmw_prefix(KEYS[1]) .. 'convs:' .. (f[2] or '')
redis.call('ZADD', conversations, now_ms, f[6] or '')
llmw_touch(conversations, now_ms + tonumber(ARGV[6]) * 1000)
return {f[2] or ''}`,
  },
  llmwStoreFail: {
    keys: 1,
    lua: `
local f = redis.call('HMGET', KEYS[1], ${TASK_FIELDS}, 'completedAt')
if not f[1] or f[5] then return 0 end
redis.call('HSET', KEYS[1], 'error', ARGV[1], 'completedAt', ARGV[2], 'status', 'delivering', 'updatedAt', ARGV[3])
llmw_restatus(KEYS[1], f[2], f[3], f[4], f[1], 'delivering')
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

/** Binds the scripts to `client` (backends/redis/redis-scripts.ts); returns the function that runs one by name. */
export function defineStoreScripts(
  client: Redis,
): (name: ScriptName, keys: string[], args: ScriptArg[]) => Promise<unknown> {
  const sources = {} as Record<ScriptName, ScriptSource>;
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    sources[name] = { keys: SCRIPTS[name].keys, lua: PRELUDE + SCRIPTS[name].lua };
  }
  const scripts = bindScripts(client, sources);
  return (name, keys, args) => scripts[name](...keys, ...args);
}
