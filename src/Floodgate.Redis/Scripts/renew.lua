-- Floodgate: renews a concurrency lease still held, to one lease timeout from the server's now (never shortening it),
-- for a request that is still running. The lease member is re-scored only if it is there (ZADD XX) and has not expired:
-- a lease gone (released, expired, or never granted) is not brought back, since its permit may be another request's
-- now. Its permits are not touched: the sum decide.lua keeps in the member '#' counts the lease either way.
--
-- KEYS[1]  the concurrency key
-- ARGV[1]  the lease member, '<lease id>:<permits>'
-- ARGV[2]  the lease timeout, in microseconds
-- Returns 1 when the lease is held (and now expires no sooner than now + timeout), 0 when it is not (nothing changed:
-- an expired lease is left for the next decision to take out of the set and the sum, as decide.lua does).
local key, member = KEYS[1], ARGV[1]
local expiry = redis.call('ZSCORE', key, member)
if not expiry then
  return 0
end

-- '%d' formats a C long: exact for these numbers where a long has 64 bits; a 32-bit build falls back to '%.0f'.
local D = '%d'
if struct.size('l') < 8 then
  D = '%.0f'
end

local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
expiry = expiry + 0
if expiry <= now then
  return 0
end

local renewed = now + ARGV[2]
if renewed > expiry then
  -- The key lives as long as its latest lease (decide.lua's TTL): extended only when this lease becomes the latest, so
  -- the TTL never shrinks below another lease's expiry.
  local latest = redis.call('ZRANGE', key, '-1', '-1', 'WITHSCORES')[2] + 0
  redis.call('ZADD', key, 'XX', string.format(D, renewed), member)
  if renewed > latest then
    redis.call('PEXPIRE', key, string.format(D, math.ceil((renewed - now) / 1000)))
  end
end
return 1
