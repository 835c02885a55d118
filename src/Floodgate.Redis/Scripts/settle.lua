-- Floodgate: settles a cost once a request's real cost is known: a refund when delta is negative, an extra charge when
-- positive, which may overdraw the key. Mirrors Floodgate.Algorithms.LimitMath.Settle line by line; never refuses.
--
-- KEYS[1]  the state key (a string: gcra 'A', the counters 'A:B:C', as decide.lua keeps them)
-- ARGV[1]  now in microseconds since the Unix epoch, or '' to read the server's clock (TIME) (tests pass a value)
-- ARGV[2]  the algorithm (0 gcra, 1 sliding_window, 2 fixed_window, 3 quota)
-- ARGV[3]  delta, already within what one settlement may move (LimitMath.MaxSettleUnits): the caller clamps it
-- ARGV[4..] gcra            interval, the longest span past now (Limit.MaxSpanMicroseconds)
--           sliding_window  window
--           fixed_window    window
--           quota           period, calendar (0|1), period start, period end (around the caller's now), next period end
-- Returns {1, now, A, B, C}: the state after; or {-1, now}, having written nothing, when a calendar quota's periods,
-- computed by the caller's clock, do not contain the server's now (the caller sends again with the server's now).
--
-- Numbers: every value stays an integer below 2^53 (a count within 0 and 2^53 - 1, a gcra arrival time within now and
-- now + 2^52), so Lua's doubles compute exactly what C#'s longs do; see decide.lua for '%d'.
local call = redis.call
local fmod, ceil, floor = math.fmod, math.ceil, math.floor
local D, D3 = '%d', '%d:%d:%d'
if struct.size('l') < 8 then
  D, D3 = '%.0f', '%.0f:%.0f:%.0f'
end
local MAX_AMOUNT = 9007199254740991

local now
local pad = 0
if ARGV[1] ~= '' then
  now = ARGV[1] + 0
  pad = 60000
else
  local t = call('TIME')
  now = t[1] * 1000000 + t[2]
end

local key, algorithm, delta = KEYS[1], ARGV[2], ARGV[3] + 0

local a, b, c = 0, 0, 0
local v = call('GET', key)
if v then
  if string.find(v, ':', 1, true) then
    local x, y, z = string.match(v, '^(%d+):(%d+):(%d+)$')
    if x then
      a, b, c = x + 0, y + 0, z + 0
    end
  elseif string.find(v, '^%d+$') then
    a = v + 0
  end
end

-- LimitMath.SettledCount: never below zero, never past the largest amount.
local function settled(count)
  count = count + delta
  if count < 0 then
    return 0
  elseif count > MAX_AMOUNT then
    return MAX_AMOUNT
  end
  return count
end

local na, nb, nc, expires
if algorithm == '0' then
  -- LimitMath.SettleGcra: the arrival time moves by whole intervals, within now and now + the longest span.
  local interval, span = ARGV[4] + 0, ARGV[5] + 0
  local baseline = a > now and a or now
  na = baseline + interval * delta
  if na < now then
    na = now
  elseif na > now + span then
    na = now + span
  end
  nb, nc, expires = 0, 0, na
elseif algorithm == '1' then
  -- LimitMath.SettleSlidingWindow: the current window's count; t as in decide.lua.
  local window = ARGV[4] + 0
  local t = a > now and a or now
  local start = t - fmod(t, window)
  local previous, current = 0, 0
  if a == start then
    previous, current = b, c
  elseif a == start - window then
    previous, current = c, 0
  end
  na, nb, nc, expires = start, previous, settled(current), start + 2 * window
elseif algorithm == '2' then
  -- LimitMath.SettleFixedWindow.
  local window = ARGV[4] + 0
  local t = a > now and a or now
  local start = t - fmod(t, window)
  local count = a == start and b or 0
  na, nb, nc, expires = start, settled(count), start + window, start + window
else
  -- LimitMath.SettleQuota, with LimitMath.QuotaPeriod.
  local period, calendar = ARGV[4] + 0, ARGV[5]
  local start, finish
  if a > now and c > a then
    start, finish = a, c
  elseif calendar == '1' then
    local p4, p5, p6 = ARGV[6] + 0, ARGV[7] + 0, ARGV[8] + 0
    if now >= p4 and now < p5 then
      start, finish = p4, p5
    elseif now >= p5 and now < p6 then
      start, finish = p5, p6
    else
      return {-1, now}
    end
  elseif c > now then
    start, finish = a, c
  else
    start, finish = now, now + period
  end
  local count = (a == start and c == finish) and b or 0
  na, nb, nc, expires = start, settled(count), finish, finish
end

local ttl = ceil((expires - now) / 1000)
ttl = (ttl < 1 and 1 or ttl) + pad
if algorithm == '0' then
  call('SET', key, string.format(D, na), 'PX', string.format(D, ttl))
else
  call('SET', key, string.format(D3, na, nb, nc), 'PX', string.format(D, ttl))
end
return {1, now, na, nb, nc}
