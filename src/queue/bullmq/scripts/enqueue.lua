-- Registers a job: the dedup check, the entry, its place on its group list, and, when it heads
-- its group (or has none), a `lw:pending` record until it is in BullMQ.
-- KEYS: jobs, pending, groups, group list.
-- ARGV: id, entry, group ('' = none), now.
-- Returns nil for a duplicate, 1 when the job waits behind its group head, 2 when it must be
-- added to BullMQ now.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return nil end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[3])
  if redis.call('RPUSH', KEYS[4], ARGV[1]) > 1 then return 1 end
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 2
