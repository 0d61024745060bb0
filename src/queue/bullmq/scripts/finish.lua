-- Ends a job: off the registry and its group list; the group's next registered job (if this one
-- was the head) is recorded in `lw:pending` until it is in BullMQ.
-- KEYS: jobs, attempts, pending, groups, group list.
-- ARGV: id, bullId, group ('' = none), now.
-- Returns the next group head's entry when this job was the head, else nil.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.sub(entry, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[3] == '' then return nil end
if redis.call('LINDEX', KEYS[5], 0) ~= ARGV[1] then
  redis.call('LREM', KEYS[5], 1, ARGV[1])
  return nil
end
redis.call('LPOP', KEYS[5])
while true do
  local nextId = redis.call('LINDEX', KEYS[5], 0)
  if not nextId then
    redis.call('SREM', KEYS[4], ARGV[3])
    return nil
  end
  local nextEntry = redis.call('HGET', KEYS[1], nextId)
  if nextEntry then
    redis.call('ZADD', KEYS[3], ARGV[4], nextId)
    return nextEntry
  end
  redis.call('LPOP', KEYS[5])
end
