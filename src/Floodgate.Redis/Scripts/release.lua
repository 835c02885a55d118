-- Floodgate: releases a concurrency lease, giving its permits back to the sum decide.lua keeps in the key's member
-- '#' (scored by minus the permits held). A lease already gone (released, expired, or never granted) changes nothing.
--
-- KEYS[1]  the concurrency key
-- ARGV[1]  the lease member, '<lease id>:<permits>'
-- ARGV[2]  its permits
-- Without a sum (a key edited by hand) none is created here: the next decision counts the leases and writes it.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 and redis.call('ZSCORE', KEYS[1], '#') then
  redis.call('ZINCRBY', KEYS[1], ARGV[2], '#')
end
return 0
