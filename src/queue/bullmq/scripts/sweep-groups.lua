-- Checks the heads of some groups: drops unregistered heads and forgets empty groups.
-- KEYS: jobs, groups, pending.
-- ARGV: BullMQ key base (`<prefix>:<queue>:`), then group list key prefix, then group names.
-- Returns the entries of the heads that are neither in BullMQ nor recorded in `lw:pending`.
local missing = {}
for index = 3, #ARGV do
  local group = ARGV[index]
  local list = ARGV[2] .. group
  while true do
    local head = redis.call('LINDEX', list, 0)
    if not head then
      redis.call('SREM', KEYS[2], group)
      break
    end
    local entry = redis.call('HGET', KEYS[1], head)
    if entry then
      local bullId = string.match(entry, '^([^|]*)|')
      if redis.call('EXISTS', ARGV[1] .. bullId) == 0 and not redis.call('ZSCORE', KEYS[3], head) then
        missing[#missing + 1] = entry
      end
      break
    end
    redis.call('LPOP', list)
  end
end
return missing
