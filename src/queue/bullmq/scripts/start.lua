-- Starts a run of a job. A running job is in BullMQ: it needs no `lw:pending` record any more.
-- KEYS: jobs, attempts, pending.
-- ARGV: id, bullId.
-- Returns the attempt number, or 0 for a stale copy (the job is not registered under bullId).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.sub(entry, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
