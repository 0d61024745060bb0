/**
 * The redis mode's destinations, one set of keys per destination, shared by every worker:
 * `dest:<ns>|<origin>` (hash: the breaker record and the last error), `…:w` (hash: outcome
 * counts per window bucket), `…:held` (sorted set: held job → since), and `dests:<ns>` (set: the
 * namespace's origins, for listing). Each write refreshes their expiry, so a destination no longer
 * used disappears after `idleTtlMs`. Counting an outcome and a compare-and-set are one script each.
 */
import type { Redis } from 'ioredis';
import { withRedis } from '../backends/redis/redis-connection.js';
import { bindScripts } from '../backends/redis/redis-scripts.js';
import {
  type BreakerRecord,
  type BreakerStateName,
  bucketOf,
  CLOSED,
  type OutcomeWindow,
  oldestBucket,
} from './breaker.js';
import type { DestinationRef, DestinationStore, DestinationView } from './destination-store.js';

/** Sums the window's buckets from ARGV[1] on (dropping older ones): ok, failed. */
const SUM_WINDOW = `
local function sum_window(key, oldest)
  local ok, failed = 0, 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local bucket, kind = string.match(all[i], '^(-?%d+):(%a+)$')
    if tonumber(bucket) < oldest then
      redis.call('HDEL', key, all[i])
    elseif kind == 'ok' then
      ok = ok + tonumber(all[i + 1])
    else
      failed = failed + tonumber(all[i + 1])
    end
  end
  return ok, failed
end
`;

const RECORD_FIELDS = `
local function record_of(key)
  return redis.call('HMGET', key, 'state', 'untilMs', 'cooldownMs', 'version', 'changedAtMs', 'lastError')
end
`;

/**
 * KEYS: hash, window, index. ARGV: ok (1|0), error, bucket, oldest bucket, ttl ms, now ms, origin,
 * successes counted besides. Returns ok, failed, then the record's fields.
 */
const RECORD_OUTCOME = `${SUM_WINDOW}${RECORD_FIELDS}
local field = ARGV[3] .. (ARGV[1] == '1' and ':ok' or ':f')
redis.call('HINCRBY', KEYS[2], field, 1)
if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':ok', ARGV[8]) end
local ok, failed = sum_window(KEYS[2], tonumber(ARGV[4]))
if redis.call('HSETNX', KEYS[1], 'version', 0) == 1 then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'untilMs', 0, 'cooldownMs', 0, 'changedAtMs', ARGV[6])
end
if ARGV[1] ~= '1' then redis.call('HSET', KEYS[1], 'lastError', ARGV[2]) end
redis.call('SADD', KEYS[3], ARGV[7])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
local record = record_of(KEYS[1])
return { ok, failed, record[1], record[2], record[3], record[4], record[5] }`;

/** KEYS: hash, index. ARGV: expected version, state, until, cooldown, version, changed at, ttl, origin. */
const TRANSITION = `
if tonumber(redis.call('HGET', KEYS[1], 'version') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'untilMs', ARGV[3], 'cooldownMs', ARGV[4], 'version', ARGV[5], 'changedAtMs', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return 1`;

/** KEYS: hash, window, held. ARGV: now ms. Returns 1 when the destination was known. */
const RESET = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'state', 'closed', 'untilMs', 0, 'cooldownMs', 0, 'changedAtMs', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('DEL', KEYS[2])
return 1`;

/** KEYS: held, index. ARGV: job id, since ms, ttl ms, origin. Returns how many held ones are older. */
const HOLD = `
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return redis.call('ZRANK', KEYS[1], ARGV[1])`;

/** KEYS: hash, window, held. ARGV: oldest bucket. Returns the record's fields, ok, failed, held. */
const VIEW = `${SUM_WINDOW}${RECORD_FIELDS}
local ok, failed = sum_window(KEYS[2], tonumber(ARGV[1]))
local record = record_of(KEYS[1])
return { record[1] or false, record[2], record[3], record[4], record[5], record[6], ok, failed, redis.call('ZCARD', KEYS[3]) }`;

type Field = string | null;

interface DestinationCommands {
  llmwDestOutcome(
    ...args: Array<string | number>
  ): Promise<[number, number, Field, Field, Field, Field, Field]>;
  llmwDestTransition(...args: Array<string | number>): Promise<number>;
  llmwDestReset(...args: Array<string | number>): Promise<number>;
  llmwDestHold(...args: Array<string | number>): Promise<number>;
  llmwDestView(
    ...args: Array<string | number>
  ): Promise<[Field, Field, Field, Field, Field, Field, number, number, number]>;
}

const SCRIPTS = {
  llmwDestOutcome: { keys: 3, lua: RECORD_OUTCOME },
  llmwDestTransition: { keys: 2, lua: TRANSITION },
  llmwDestReset: { keys: 3, lua: RESET },
  llmwDestHold: { keys: 2, lua: HOLD },
  llmwDestView: { keys: 3, lua: VIEW },
} as const;

function toRecord(fields: readonly Field[]): BreakerRecord {
  const [state, untilMs, cooldownMs, version, changedAtMs] = fields;
  if (state === null || state === undefined) return CLOSED;
  return {
    state: state as BreakerStateName,
    untilMs: Number(untilMs ?? 0),
    cooldownMs: Number(cooldownMs ?? 0),
    version: Number(version ?? 0),
    changedAtMs: Number(changedAtMs ?? 0),
  };
}

export interface RedisDestinationStoreOptions {
  keyPrefix: string;
  /** A destination's keys expire this long after its last write. */
  idleTtlMs: number;
}

export function createRedisDestinationStore(
  client: Redis,
  options: RedisDestinationStoreOptions,
): DestinationStore {
  const commands = bindScripts(client, SCRIPTS) as unknown as DestinationCommands;
  const ttl = Math.max(1000, Math.ceil(options.idleTtlMs));
  const hashKey = (ref: DestinationRef): string =>
    `${options.keyPrefix}dest:${ref.namespace}|${ref.destination}`;
  const indexKey = (namespace: string): string => `${options.keyPrefix}dests:${namespace}`;

  const view = async (
    ref: DestinationRef,
    nowMs: number,
    windowMs: number,
  ): Promise<DestinationView | null> => {
    const hash = hashKey(ref);
    const fields = await commands.llmwDestView(
      hash,
      `${hash}:w`,
      `${hash}:held`,
      oldestBucket(nowMs, windowMs),
    );
    if (fields[0] === null) return null;
    return {
      ...ref,
      record: toRecord(fields.slice(0, 5) as Field[]),
      lastError: fields[5],
      window: { ok: fields[6], failed: fields[7] },
      held: fields[8],
    };
  };

  return {
    get: (ref) =>
      withRedis('read a destination', async () =>
        toRecord(
          await client.hmget(hashKey(ref), 'state', 'untilMs', 'cooldownMs', 'version', 'changedAtMs'),
        ),
      ),

    recordOutcome: (ref, ok, error, nowMs, windowMs, extraOk = 0) =>
      withRedis('record a delivery outcome', async () => {
        const hash = hashKey(ref);
        const [okCount, failed, ...fields] = await commands.llmwDestOutcome(
          hash,
          `${hash}:w`,
          indexKey(ref.namespace),
          ok ? 1 : 0,
          error ?? '',
          bucketOf(nowMs, windowMs),
          oldestBucket(nowMs, windowMs),
          ttl,
          nowMs,
          ref.destination,
          Math.max(0, Math.floor(extraOk)),
        );
        const window: OutcomeWindow = { ok: okCount, failed };
        return { record: toRecord(fields), window };
      }),

    transition: (ref, expectedVersion, next) =>
      withRedis('change a breaker', async () => {
        const changed = await commands.llmwDestTransition(
          hashKey(ref),
          indexKey(ref.namespace),
          expectedVersion,
          next.state,
          next.untilMs,
          next.cooldownMs,
          next.version,
          next.changedAtMs,
          ttl,
          ref.destination,
        );
        return changed === 1;
      }),

    hold: (ref, jobId, sinceMs) =>
      withRedis('hold a delivery', () =>
        commands.llmwDestHold(
          `${hashKey(ref)}:held`,
          indexKey(ref.namespace),
          jobId,
          sinceMs,
          ttl,
          ref.destination,
        ),
      ),

    unhold: (ref, jobId) =>
      withRedis(
        'release a held delivery',
        async () => void (await client.zrem(`${hashKey(ref)}:held`, jobId)),
      ),

    releaseHeld: (ref) =>
      withRedis('release held deliveries', async () => void (await client.del(`${hashKey(ref)}:held`))),

    list: (namespace, nowMs, windowMs) =>
      withRedis('list destinations', async () => {
        const origins = (await client.smembers(indexKey(namespace))).sort();
        const views = await Promise.all(
          origins.map((destination) => view({ namespace, destination }, nowMs, windowMs)),
        );
        const gone = origins.filter((_, index) => views[index] === null);
        if (gone.length > 0) await client.srem(indexKey(namespace), ...gone);
        return views.filter((entry): entry is DestinationView => entry !== null);
      }),

    reset: (ref, nowMs) =>
      withRedis('reset a breaker', async () => {
        const hash = hashKey(ref);
        return (await commands.llmwDestReset(hash, `${hash}:w`, `${hash}:held`, nowMs)) === 1;
      }),
  };
}
