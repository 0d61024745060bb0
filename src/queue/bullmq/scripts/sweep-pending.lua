-- Settles up to a batch of the `lw:pending` entries older than the grace period whose job ended
-- or is in BullMQ, and returns the entries of the others (to be added). BullMQ job keys are
-- derived from the base; they share its hash tag.
-- KEYS: jobs, pending.
-- ARGV: BullMQ key base (`<prefix>:<queue>:`), oldest score to keep, batch size.
-- Returns the entries of the jobs to add to BullMQ.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local missing = {}
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if not entry then
    redis.call('ZREM', KEYS[2], id)
  else
    local bullId = string.match(entry, '^([^|]*)|')
    if redis.call('EXISTS', ARGV[1] .. bullId) == 1 then
      redis.call('ZREM', KEYS[2], id)
    else
      missing[#missing + 1] = entry
    end
  end
end
return missing
