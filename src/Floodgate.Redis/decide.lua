-- Floodgate: decides groups of checks, stage by stage. Mirrors Floodgate.Algorithms.LimitMath line by line.
--
-- A group is the checks of one identity: they commit all or nothing. A stage is the groups of one tier: when an
-- enforced check of a stage is denied, the stages after it are not evaluated, so a request costs one call however
-- many tiers it has. On a cluster every key of one call is in one slot (a group's keys share the identity's hash tag).
--
-- KEYS[i]  the state key of check i, in order over every group.
-- ARGV[1]  now in microseconds since the Unix epoch, or '' to read the server's clock (TIME). Tests pass a value.
-- ARGV[2]  the number of groups, g. Then per group: its stage, its number of checks n, and n strides of 10 values:
--   algorithm (0 gcra, 1 sliding_window, 2 fixed_window, 3 quota, 4 concurrency), cost, shadow (0|1), p1..p7:
--   gcra            p1 interval, p2 tolerance, p3 burst, p7 slice
--   sliding_window  p1 window, p2 amount, p7 slice
--   fixed_window    p1 window, p2 amount, p7 slice
--   quota           p1 amount, p2 period, p3 calendar (0|1), p4 start, p5 end, p6 next end, p7 slice
--   concurrency     p1 permits, p2 lease timeout, p3 lease member ('<lease id>:<permits>')
--
-- State: a string; gcra keeps 'A', the counters 'A:B:C' (the slots of LimitState). Concurrency keeps a sorted set
-- of leases scored by expiry. Every write sets a TTL: the moment the state becomes the same as no state.
--
-- Returns {1, now, e, then per check of the first e groups (those evaluated): allowed (0|1), a, b, c, granted}: the
-- state BEFORE the decision (for concurrency: permits in flight, earliest and latest expiry), and what was granted (the
-- cost, a leased slice, or 0). The caller recomputes the outcome from that state with the same C# the in-memory store
-- uses. Returns {-1, now}, having written nothing, when a calendar quota's periods, computed by the caller's clock, do
-- not contain the server's now; the caller resends.
--
-- Numbers: every value stays an integer below 2^53, so Lua's doubles compute exactly what C#'s longs do. Numbers are
-- formatted with '%.0f' before they reach redis.call, whose default '%.14g' would mangle 16-digit microseconds.

-- With an explicit now (tests only), TTLs are padded by a minute of server time: the test's clock and the server's
-- run at different speeds, and a state kept past its expiry is, by construction, the same as no state.
local now
local pad = 0
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
  pad = 60000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local groups = tonumber(ARGV[2])
local STRIDE = 10

-- Calendar periods first, before anything is written: a resend must find the state untouched.
do
  local pos = 3
  for _ = 1, groups do
    local count = tonumber(ARGV[pos + 1])
    for i = 1, count do
      local base = pos + 1 + (i - 1) * STRIDE
      if ARGV[base + 1] == '3' and ARGV[base + 6] == '1' then
        if now < tonumber(ARGV[base + 7]) or now >= tonumber(ARGV[base + 9]) then
          return {-1, now}
        end
      end
    end
    pos = pos + 2 + count * STRIDE
  end
end

local function fmt(x)
  return string.format('%.0f', x)
end

local function read_state(key)
  local v = redis.call('GET', key)
  if not v then
    return 0, 0, 0
  end
  local a, b, c = string.match(v, '^(%d+):(%d+):(%d+)$')
  if a then
    return tonumber(a), tonumber(b), tonumber(c)
  end
  a = string.match(v, '^(%d+)$')
  if a then
    return tonumber(a), 0, 0
  end
  return 0, 0, 0
end

-- Each decision returns allowed, then (when allowed with a positive cost) the next state and its expiry.
local function gcra(a, cost, interval, tolerance, burst)
  local baseline = math.max(a, now)
  if cost > burst then
    return false
  end
  local candidate = baseline + interval * cost
  if candidate - tolerance > now then
    return false
  end
  return true, candidate, 0, 0, candidate
end

local function counter(amount, start, finish, count, cost, expires)
  if cost > amount then
    return false
  end
  if count + cost > amount then
    return false
  end
  return true, start, count + cost, finish, expires
end

local function fixed_window(a, b, cost, window, amount)
  local start = now - math.fmod(now, window)
  local count = 0
  if a == start then
    count = b
  end
  return counter(amount, start, start + window, count, cost, start + window)
end

local function quota(a, b, c, cost, amount, period, calendar, p4, p5, p6)
  local start, finish
  if calendar == 1 then
    if now >= p4 and now < p5 then
      start, finish = p4, p5
    elseif now >= p5 and now < p6 then
      start, finish = p5, p6
    else
      return nil
    end
  elseif c > now and a <= now then
    start, finish = a, c
  else
    start, finish = now, now + period
  end
  local count = 0
  if a == start and c == finish then
    count = b
  end
  return counter(amount, start, finish, count, cost, finish)
end

local function sliding_window(a, b, c, cost, window, amount)
  local start = now - math.fmod(now, window)
  local previous, current = 0, 0
  if a == start then
    previous, current = b, c
  elseif a == start - window then
    previous, current = c, 0
  end
  local elapsed = now - start
  local weighted = math.floor(previous * (window - elapsed) / window)
  if cost > amount then
    return false
  end
  if weighted + current + cost > amount then
    return false
  end
  return true, start, previous, current + cost, start + 2 * window
end

local function decide(algorithm, a, b, c, cost, base)
  local p1, p2, p3 = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  if algorithm == 0 then
    return gcra(a, cost, p1, p2, p3)
  elseif algorithm == 1 then
    return sliding_window(a, b, c, cost, p1, p2)
  elseif algorithm == 2 then
    return fixed_window(a, b, cost, p1, p2)
  end
  return quota(a, b, c, cost, p1, p2, p3, tonumber(ARGV[base + 7]), tonumber(ARGV[base + 8]), tonumber(ARGV[base + 9]))
end

-- Decides one group: appends its answers to out and returns whether an enforced check was denied (then the group
-- writes nothing).
local function decide_group(out, first_key, base0, count)
  local writes = {}
  local denied = false
  for i = 1, count do
    local base = base0 + (i - 1) * STRIDE
    local algorithm = tonumber(ARGV[base + 1])
    local cost = tonumber(ARGV[base + 2])
    local shadow = ARGV[base + 3] == '1'
    local key = KEYS[first_key + i - 1]
    local allowed, granted = false, 0
    local a, b, c

    if algorithm == 4 then
      local permits, lease = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
      redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
      local leases = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      local in_flight, earliest, latest = 0, 0, 0
      for j = 1, #leases, 2 do
        in_flight = in_flight + (tonumber(string.match(leases[j], ':(%d+)$')) or 0)
        local expiry = tonumber(leases[j + 1])
        if earliest == 0 or expiry < earliest then
          earliest = expiry
        end
        if expiry > latest then
          latest = expiry
        end
      end
      a, b, c = in_flight, earliest, latest
      allowed = cost <= permits and in_flight + cost <= permits
      if allowed then
        granted = cost
        if cost > 0 then
          writes[#writes + 1] = {4, key, now + lease, ARGV[base + 6], math.max(latest, now + lease)}
        end
      end
    else
      a, b, c = read_state(key)
      local slice = tonumber(ARGV[base + 10])
      local ok, na, nb, nc, expires
      if slice > cost then
        ok, na, nb, nc, expires = decide(algorithm, a, b, c, slice, base)
        if ok then
          granted = slice
        end
      end
      if granted == 0 then
        ok, na, nb, nc, expires = decide(algorithm, a, b, c, cost, base)
        if ok then
          granted = cost
        end
      end
      allowed = ok
      if allowed and granted > 0 then
        if algorithm == 0 then
          writes[#writes + 1] = {0, key, fmt(na), expires}
        else
          writes[#writes + 1] = {algorithm, key, fmt(na) .. ':' .. fmt(nb) .. ':' .. fmt(nc), expires}
        end
      end
    end

    if not allowed and not shadow then
      denied = true
    end
    out[#out + 1] = allowed and 1 or 0
    out[#out + 1] = a
    out[#out + 1] = b
    out[#out + 1] = c
    out[#out + 1] = granted
  end

  -- All or nothing: one denied enforced check means no check of this identity commits.
  if not denied then
    for _, w in ipairs(writes) do
      if w[1] == 4 then
        redis.call('ZADD', w[2], fmt(w[3]), w[4])
        redis.call('PEXPIRE', w[2], fmt(math.ceil((w[5] - now) / 1000) + pad))
      else
        redis.call('SET', w[2], w[3], 'PX', fmt(math.max(1, math.ceil((w[4] - now) / 1000)) + pad))
      end
    end
  end
  return denied
end

local out = {1, now, 0}
local pos, first_key = 3, 1
local stage, stage_denied = nil, false
for g = 1, groups do
  local group_stage, count = ARGV[pos], tonumber(ARGV[pos + 1])
  if group_stage ~= stage then
    if stage_denied then
      break
    end
    stage = group_stage
  end
  if decide_group(out, first_key, pos + 1, count) then
    stage_denied = true
  end
  out[3] = g
  pos = pos + 2 + count * STRIDE
  first_key = first_key + count
end

return out
