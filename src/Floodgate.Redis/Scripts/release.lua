-- Floodgate: releases a concurrency lease, giving its permits back to the sum decide.lua keeps in the key's member
-- '#' (scored by minus the permits held). A lease already gone (released, expired, or never granted) changes nothing.
--
-- KEYS[1]  the concurrency key
-- ARGV[1]  the lease member, '<lease id>:<permits>'
-- ARGV[2]  its permits
-- ARGV[3]  for a limit that queues: the channel on which every process hears of releases (absent otherwise)
-- ARGV[4]  and the notice: the releasing process's id and the key's hash, so the others wake their waiters of that key
-- Without a sum (a key edited by hand) none is created here: the next decision counts the leases and writes it.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('ZSCORE', KEYS[1], '#') then
    redis.call('ZINCRBY', KEYS[1], ARGV[2], '#')
  end
  -- In the same script: a notice costs no round trip of its own, and only a permit really freed is announced.
  if ARGV[3] then
    redis.call('PUBLISH', ARGV[3], ARGV[4])
  end
end
return 0
