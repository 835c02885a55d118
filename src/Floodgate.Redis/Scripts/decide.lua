-- Floodgate: decides groups of checks, stage by stage. Mirrors Floodgate.Algorithms.LimitMath line by line.
--
-- A group is the checks of one identity: they commit all or nothing. A stage is the groups of one tier: when an
-- enforced check of a stage is denied, the stages after it are not evaluated, so a request costs one call however
-- many tiers it has. On a cluster every key of one call is in one slot (a group's keys share the identity's hash tag).
--
-- A run is one call or, when the store coalesces the calls of concurrent decisions, several, decided one after the
-- other as if each had been sent alone: each keeps its own stages, and sees what the calls before it wrote.
--
-- The wire layout is named by local constants (the ARGV header's after this header, the rest at the top of
-- decide_call): each an offset from 0 within its part (the ARGV header, a group's header, a check's stride, the
-- answer's header, a check's answer), with the same name and value as in C#'s DecideProtocol, which
-- DecideProtocolTests checks. Lua counts from 1: a part that starts at ARGV[p] holds the value named OFFSET at
-- ARGV[p + OFFSET].
--
-- KEYS[i]  the state key of check i, in order over every group of every call.
-- ARGV     the header: ARG_NOW, now in microseconds since the Unix epoch, or '' to read the server's clock (TIME)
--          (tests pass a value); ARG_HEAD, for one call its number of groups, then its groups; for several calls
--          minus their number, then per call its number of groups and its groups. A group: GROUP_STAGE, its stage;
--          GROUP_CHECKS, its number of checks n; then n strides of CHECK_STRIDE values:
--   ALGORITHM (0 gcra, also leaky_bucket, 1 sliding_window, 2 fixed_window, 3 quota, 4 concurrency, 5 sliding_log), COST, MODE, P1, P2, P3,
--   PERIOD_START, PERIOD_END, NEXT_PERIOD_END, SLICE, where MODE is 0 enforce, 1 shadow, 2 probe (decided with its
--   cost, never written, its denial enforced), 3 shadow probe, plus 4 when always charged (written whether it fits or
--   not, and whatever its group decides: LimitMath.Settle of its cost when denied; never with a probe, nor for
--   concurrency):
--   gcra            P1 interval, P2 tolerance, P3 burst, SLICE
--   sliding_window  P1 window, P2 amount, SLICE
--   fixed_window    P1 window, P2 amount, SLICE
--   quota           P1 amount, P2 period, P3 calendar (0|1), PERIOD_START, PERIOD_END (the period around the caller's
--                   now), NEXT_PERIOD_END (the end of the next), SLICE
--   concurrency     P1 permits, P2 lease timeout, P3 lease member ('<lease id>:<permits>')
--   sliding_log     P1 window, P2 amount
--
-- State: a string; gcra keeps 'A', the counters 'A:B:C' (the slots of LimitState). Concurrency keeps a sorted set
-- of leases '<lease id>:<permits>' scored by expiry, plus the member '#' scored by minus the sum of their permits, so
-- a decision reads the permits in flight without reading every lease; a release is release.lua, which keeps the sum.
-- A sliding log keeps a list of entry times, oldest first, at most its amount in the window; its answer is the entries
-- in the window, the time of the one that must leave it for the cost to fit (0: none), and the newest (0: none).
-- Every write sets a TTL: the moment the state becomes the same as no state. The strings are read by one MGET before
-- the first call, and written by one SET per key after the last, with the TTL of the key's last state: a group still
-- sees a key as it stands when it is decided, since a key an earlier group of the run wrote reads as that write.
--
-- Returns, for one call, the header REPLY_STATUS (STATUS_DECIDED), REPLY_NOW (now), REPLY_EVALUATED (e), then per check
-- of the first e groups (those evaluated) REPLY_STRIDE values: ALLOWED (0|1), STATE_A, STATE_B, STATE_C, GRANTED: the
-- state BEFORE the decision (for concurrency: permits in flight, earliest and latest expiry), and what was granted (the
-- cost, a leased slice, or 0, as for a probe). The caller recomputes the outcome from that state with the same C# the
-- in-memory store uses. Returns {STATUS_CALENDAR_SKEW, now}, having written nothing, when a calendar quota's periods,
-- computed by the caller's clock, do not contain the server's now; the caller resends. For several calls: an array of
-- their answers, in order.
--
-- An error (a concurrency key of another type, edited by hand) stops the whole run. The strings are written only at
-- its end, so such a run has written none; what it may have written is the leases granted before the error (and the
-- removal of expired ones). The store then sends each call of the run again alone, so that only the call that meets
-- the key fails; a lease granted by the stopped run is found again, not counted twice, and expires with its timeout.
--
-- Numbers: every value stays an integer below 2^53, so Lua's doubles compute exactly what C#'s longs do. A string
-- becomes a number by arithmetic (s + 0), which parses it once where tonumber parses it twice. A number becomes a
-- string with '%d' before it reaches redis.call: Lua's own '%.14g' would mangle 16-digit microseconds, and '%.0f'
-- costs more, as does a number passed as is (Redis 7.0 spells it with '%.17g').
--
-- The script runs once per request (or per run of coalesced requests), so it is written for the server's CPU: few
-- redis.calls, each argument parsed once, three closures, and the algorithms inlined.

-- The ARGV header's offsets (see the header), as C#'s DecideProtocol names them.
local ARG_NOW = 0
local ARG_HEAD = 1
local ARG_HEADER = 2

local ARGV, KEYS, call, unpack = ARGV, KEYS, redis.call, unpack
local find, match, format = string.find, string.match, string.format
local fmod, floor, ceil, min = math.fmod, math.floor, math.ceil, math.min

-- '%d' formats a C long: exact for these numbers where a long has 64 bits; a 32-bit build falls back to '%.0f'.
local D, D3 = '%d', '%d:%d:%d'
if struct.size('l') < 8 then
  D, D3 = '%.0f', '%.0f:%.0f:%.0f'
end

-- unpack puts its values on Lua's C stack, which holds 8000.
local UNPACK_MAX = 7000

-- With an explicit now (tests only), TTLs are padded by a minute of server time: the test's clock and the server's
-- run at different speeds, and a state kept past its expiry is, by construction, the same as no state.
local now
local pad = 0
if ARGV[1 + ARG_NOW] ~= '' then
  now = ARGV[1 + ARG_NOW] + 0
  pad = 60000
else
  local t = call('TIME')
  now = t[1] * 1000000 + t[2]
end

local head = ARGV[1 + ARG_HEAD] + 0

-- state[i] is the string at KEYS[i], or false (no key, or a sorted set: concurrency reads its own when decided).
local nkeys = #KEYS
local state
if nkeys > 0 and nkeys <= UNPACK_MAX then
  state = call('MGET', unpack(KEYS))
else
  state = {}
  for i = 1, nkeys, UNPACK_MAX do
    local part = call('MGET', unpack(KEYS, i, min(i + UNPACK_MAX - 1, nkeys)))
    for k = 1, #part do
      state[i + k - 1] = part[k]
    end
  end
end

-- strings[key]: the key's string as MGET read it, or as a lone call has written it (false: none). In a run of several
-- calls, where the same keys come back call after call, a key's state is kept as numbers once read or written
-- (numbers[key] = {a, b, c, true when written as 'A:B:C' rather than 'A'}), so later calls neither parse it again nor
-- format what they write; a lone call is spared that table, which would cost it more than it saves. The keys written
-- wait in written, in the order first written, each with the TTL of its last write, for one SET per key at the end of
-- the run.
local strings = {}
for i = 1, nkeys do
  local key = KEYS[i]
  if strings[key] == nil then
    strings[key] = state[i]
  end
end
local numbers = head < 0 and {} or nil
local written, ttls, nwritten = {}, {}, 0

-- A concurrency key's member that holds the sum of its leases' permits, negated, as its score.
local SUM = '#'

-- The permits of lease members '<lease id>:<permits>'.
local function permits_of(members)
  local total = 0
  for l = 1, #members do
    local held = match(members[l], ':(%d+)$')
    if held then
      total = total + held
    end
  end
  return total
end

-- Writes a check's next state at key: a lease at once; a string's for later groups and calls to read, and to be SET at
-- the end.
local function write(key, algorithm, x, y, z, ttl)
  if algorithm == '4' then
    -- x: the lease's expiry, y: its member, z: its permits. Counted in the sum only when new: a call sent again after
    -- a run that failed halfway (see the header) must not count its lease twice.
    if call('ZADD', key, format(D, x), y) == 1 then
      call('ZINCRBY', key, format(D, -z), SUM)
    end
    call('PEXPIRE', key, format(D, ttl))
    return
  end
  if algorithm == '5' then
    -- x: the entries' time, y: how many, z: how many entries at the head have left the window.
    if z > 0 then
      call('LTRIM', key, format(D, z), '-1')
    end
    local entry, times = format(D, x), {}
    for i = 1, y do
      times[i] = entry
    end
    call('RPUSH', key, unpack(times))
    call('PEXPIRE', key, format(D, ttl))
    return
  end
  if numbers then
    local n = numbers[key]
    if n then
      n[1], n[2], n[3], n[4] = x, y, z, algorithm ~= '0'
    else
      numbers[key] = {x, y, z, algorithm ~= '0'}
    end
  elseif algorithm == '0' then
    strings[key] = format(D, x)
  else
    strings[key] = format(D3, x, y, z)
  end
  if not ttls[key] then
    nwritten = nwritten + 1
    written[nwritten] = key
  end
  ttls[key] = ttl
end

-- Decides one call: its groups from ARGV[pos], its keys from KEYS[first]. Returns its answer, and where what follows
-- the call in ARGV and KEYS starts.
local function decide_call(groups, pos, first)
  -- The offsets of a group, a check and the answer (see the header), as C#'s DecideProtocol names them. Locals of this
  -- function, not of the script: a closure's upvalues are made anew at every run of the script, which costs the server
  -- more than loading these constants once a call.
  local GROUP_STAGE = 0
  local GROUP_CHECKS = 1
  local GROUP_HEADER = 2
  local ALGORITHM = 0
  local COST = 1
  local MODE = 2
  local P1 = 3
  local P2 = 4
  local P3 = 5
  local PERIOD_START = 6
  local PERIOD_END = 7
  local NEXT_PERIOD_END = 8
  local SLICE = 9
  local CHECK_STRIDE = 10
  local REPLY_STATUS = 0
  local REPLY_NOW = 1
  local REPLY_EVALUATED = 2
  local REPLY_HEADER = 3
  local ALLOWED = 0
  local STATE_A = 1
  local STATE_B = 2
  local STATE_C = 3
  local GRANTED = 4
  local REPLY_STRIDE = 5
  local STATUS_DECIDED = 1
  local STATUS_CALENDAR_SKEW = -1

  -- Calendar periods first, before anything of the call is written: a resend must find its state untouched.
  local skewed = false
  local last_pos, last_key = pos, first
  for _ = 1, groups do
    local checks = ARGV[last_pos + GROUP_CHECKS] + 0
    local last = last_pos + GROUP_HEADER + checks * CHECK_STRIDE
    if not skewed then
      for base = last_pos + GROUP_HEADER, last - 1, CHECK_STRIDE do
        if ARGV[base + ALGORITHM] == '3' and ARGV[base + P3] == '1' then
          if now < ARGV[base + PERIOD_START] + 0 or now >= ARGV[base + NEXT_PERIOD_END] + 0 then
            skewed = true
            break
          end
        end
      end
    end
    last_pos = last
    last_key = last_key + checks
  end
  if skewed then
    return {STATUS_CALENDAR_SKEW, now}, last_pos, last_key
  end

  -- Sized at once, as a growing table rehashes at every power of two; the slots past the last group evaluated are
  -- cleared at the end. The header in order (REPLY_STATUS, REPLY_NOW, REPLY_EVALUATED), then room for the checks.
  local size = REPLY_HEADER + REPLY_STRIDE * (last_key - first)
  local out
  if size <= UNPACK_MAX then
    out = {STATUS_DECIDED, now, 0, unpack(ARGV, REPLY_HEADER + 1, size)}
  else
    out = {STATUS_DECIDED, now, 0}
  end
  -- Where the next check's answer starts.
  local at = REPLY_HEADER + 1
  -- The writes of a group of several checks wait for its verdict: 7 slots each (key, algorithm, x, y, z, ttl, and
  -- whether the check is always charged, which writes whatever the verdict).
  local pending
  local stage, stage_denied = nil, false
  for g = 1, groups do
    local group_stage, checks = ARGV[pos + GROUP_STAGE], ARGV[pos + GROUP_CHECKS] + 0
    if group_stage ~= stage then
      if stage_denied then
        break
      end
      stage = group_stage
    end

    local writes = 0
    local denied = false
    local j = first
    local strides = pos + GROUP_HEADER
    for base = strides, strides + (checks - 1) * CHECK_STRIDE, CHECK_STRIDE do
      local key = KEYS[j]
      local algorithm = ARGV[base + ALGORITHM]
      local cost = ARGV[base + COST] + 0
      local mode = ARGV[base + MODE] + 0
      local charged = mode >= 4
      if charged then
        mode = mode - 4
      end
      local probe = mode >= 2
      local allowed, granted = false, 0
      local a, b, c = 0, 0, 0
      -- The next state and its TTL, when the check writes.
      local na, nb, nc, ttl

      if algorithm == '4' then
        -- a: permits in flight, b: earliest expiry, c: latest expiry; each read in O(log n), whatever the leases held.
        local permits, lease = ARGV[base + P1] + 0, ARGV[base + P2] + 0
        local until_now = format(D, now)
        -- The sum sorts first (its score is minus the permits held, never above 0; a lease's is its expiry), then the
        -- earliest lease.
        local ends = call('ZRANGE', key, '0', '1', 'WITHSCORES')
        if ends[1] and (ends[1] ~= SUM or ends[2] + 0 > 0) then
          -- Leases without a sum that can be trusted (a key edited by hand): the sum is taken out, the expired leases
          -- too, and the rest counted once, in O(n), and the sum written back.
          call('ZREM', key, SUM)
          call('ZREMRANGEBYSCORE', key, '(0', until_now)
          local leases = call('ZRANGE', key, '0', '-1')
          if #leases > 0 then
            -- The key still exists, with the TTL of its latest lease: never a key left without one.
            call('ZADD', key, format(D, -permits_of(leases)), SUM)
          end
          ends = call('ZRANGE', key, '0', '1', 'WITHSCORES')
        elseif ends[3] and ends[4] + 0 <= now then
          -- Expired leases leave the set, and their permits the sum. Usually there are none: callers release theirs.
          local expired = call('ZRANGEBYSCORE', key, '(0', until_now)
          call('ZREMRANGEBYSCORE', key, '(0', until_now)
          call('ZINCRBY', key, format(D, permits_of(expired)), SUM)
          ends = call('ZRANGE', key, '0', '1', 'WITHSCORES')
        end
        if ends[1] then
          a = -(ends[2] + 0)
          if a < 0 then
            a = 0
          end
          if ends[3] then
            b = ends[4] + 0
            c = call('ZRANGE', key, '-1', '-1', 'WITHSCORES')[2] + 0
          end
        end
        allowed = cost <= permits and a + cost <= permits
        if allowed and not probe then
          granted = cost
          if cost > 0 then
            na, nb, nc = now + lease, ARGV[base + P3], cost
            ttl = ceil(((c > na and c or na) - now) / 1000) + pad
          end
        end
      elseif algorithm == '5' then
        -- LimitMath.SlidingLog: p1 window, p2 amount. The key is a list of entry times, oldest first. t: now, but not
        -- before the newest entry (the clock stepped back). Entries leave only when new ones are appended, so the
        -- window's first entry is found by a binary search, O(log n) LINDEXes. a: the entries in the window, b: the
        -- entry that must leave it for the cost to fit, c: the newest entry.
        local p1, p2 = ARGV[base + P1] + 0, ARGV[base + P2] + 0
        local n = call('LLEN', key)
        local newest, e = 0, 0
        if n > 0 then
          newest = call('LINDEX', key, '-1') + 0
        end
        local t = newest > now and newest or now
        local horizon = t - p1
        if n > 0 then
          if newest <= horizon then
            e = n
          elseif call('LINDEX', key, '0') + 0 <= horizon then
            local lo, hi = 1, n - 1
            while lo < hi do
              local mid = floor((lo + hi) / 2)
              if call('LINDEX', key, format(D, mid)) + 0 > horizon then
                hi = mid
              else
                lo = mid + 1
              end
            end
            e = lo
          end
        end
        a, c = n - e, newest
        if cost <= p2 and a + cost > p2 then
          b = call('LINDEX', key, format(D, e + a + cost - p2 - 1)) + 0
        end
        allowed = cost <= p2 and a + cost <= p2
        if (allowed and not probe) or (charged and cost > 0) then
          granted = cost
          -- LimitMath.SlidingLogAppended: never past the amount, so the list stays within it.
          local appended = min(cost, p2 - a)
          if appended > 0 then
            na, nb, nc = t, appended, e
            ttl = ceil((t + p1 - now) / 1000)
            ttl = (ttl < 1 and 1 or ttl) + pad
          end
        end
      else
        -- 'A:B:C', 'A', or anything else, which reads as no state; parsed once a run.
        local known = numbers and numbers[key]
        if known then
          a, b, c = known[1], known[2], known[3]
        else
          local v = strings[key]
          if v then
            if find(v, ':', 1, true) then
              local x, y, z = match(v, '^(%d+):(%d+):(%d+)$')
              if x then
                a, b, c = x + 0, y + 0, z + 0
              end
            elseif find(v, '^%d+$') then
              a = v + 0
            end
          end
          if numbers then
            numbers[key] = {a, b, c, false}
          end
        end
        local p1, p2, p3 = ARGV[base + P1] + 0, ARGV[base + P2] + 0, 0
        if algorithm == '0' or algorithm == '3' then
          p3 = ARGV[base + P3] + 0
        end
        local slice = ARGV[base + SLICE]
        slice = slice == '0' and 0 or slice + 0

        -- A leased slice larger than the cost is tried first; then (when the slice is not granted) the cost.
        local try = slice > cost and slice or cost
        local ok, expires
        repeat
          if algorithm == '0' then
            -- LimitMath.Gcra: p1 interval, p2 tolerance, p3 burst.
            local baseline = a > now and a or now
            ok = false
            if try <= p3 then
              local candidate = baseline + p1 * try
              if candidate - p2 <= now then
                ok, na, nb, nc, expires = true, candidate, 0, 0, candidate
              end
            end
          elseif algorithm == '1' then
            -- LimitMath.SlidingWindow: p1 window, p2 amount. t: now, but not before the state's window (the clock
            -- stepped back); TTLs still count from now.
            local t = a > now and a or now
            local start = t - fmod(t, p1)
            local previous, current = 0, 0
            if a == start then
              previous, current = b, c
            elseif a == start - p1 then
              previous, current = c, 0
            end
            local elapsed = t - start
            -- In floats, as C#'s Weighted: Lua 5.4 (Garnet's) would multiply integers, which wrap past 2^63 (a count
            -- charged past its limit reaches 2^53).
            local weighted = floor((previous + 0.0) * (p1 - elapsed) / p1)
            ok = try <= p2 and weighted + current + try <= p2
            na, nb, nc, expires = start, previous, current + try, start + 2 * p1
          else
            local start, finish, amount
            local count = 0
            if algorithm == '2' then
              -- LimitMath.FixedWindow: p1 window, p2 amount. t as in the sliding window.
              local t = a > now and a or now
              start = t - fmod(t, p1)
              finish, amount = start + p1, p2
              if a == start then
                count = b
              end
            else
              -- LimitMath.Quota: p1 amount, p2 period, p3 calendar.
              if a > now and c > a then
                start, finish = a, c
              elseif p3 == 1 then
                local p4, p5 = ARGV[base + PERIOD_START] + 0, ARGV[base + PERIOD_END] + 0
                local p6 = ARGV[base + NEXT_PERIOD_END] + 0
                if now >= p4 and now < p5 then
                  start, finish = p4, p5
                elseif now >= p5 and now < p6 then
                  start, finish = p5, p6
                end
              elseif c > now then
                start, finish = a, c
              else
                start, finish = now, now + p2
              end
              amount = p1
              if a == start and c == finish then
                count = b
              end
            end
            -- LimitMath.Counter. No start: a calendar quota whose periods miss now (answered -1 above).
            ok = start ~= nil and try <= amount and count + try <= amount
            na, nb, nc, expires = start, count + try, finish, finish
          end
          if ok and not probe then
            granted = try
          end
          local again = try ~= cost and granted == 0
          try = cost
        until not again

        allowed = ok
        if charged and not ok and cost > 0 and (algorithm ~= '3' or na) then
          -- LimitMath.Settle of the cost: it goes on past the limit (the loop's last try was the cost itself); a count
          -- saturates at 2^53 - 1; a gcra key moves by at most LimitMath.MaxSettleUnits (2^51 µs of intervals: no
          -- product wraps in Lua 5.4's integers, Garnet's) and never past now + 2^52.
          if algorithm == '0' then
            local units = floor(2251799813685248 / p1)
            if cost < units then
              units = cost
            end
            na = (a > now and a or now) + p1 * units
            if na > now + 4503599627370496 then
              na = now + 4503599627370496
            end
            nb, nc, expires = 0, 0, na
          elseif algorithm == '1' then
            if nc > 9007199254740991 then
              nc = 9007199254740991
            end
          elseif nb > 9007199254740991 then
            nb = 9007199254740991
          end
          granted = cost
        end
        if granted > 0 then
          ttl = ceil((expires - now) / 1000)
          ttl = (ttl < 1 and 1 or ttl) + pad
        end
      end

      if ttl then
        if checks == 1 then
          write(key, algorithm, na, nb, nc, ttl)
        else
          pending = pending or {}
          local w = writes * 7
          pending[w + 1], pending[w + 2], pending[w + 3] = key, algorithm, na
          pending[w + 4], pending[w + 5], pending[w + 6] = nb, nc, ttl
          pending[w + 7] = charged
          writes = writes + 1
        end
      end
      if not allowed and (mode == 0 or mode == 2) then
        denied = true
      end
      out[at + ALLOWED], out[at + STATE_A], out[at + STATE_B], out[at + STATE_C], out[at + GRANTED] =
        allowed and 1 or 0, a, b, c, granted
      at = at + REPLY_STRIDE
      j = j + 1
    end

    -- All or nothing: one denied enforced check means no check of this identity commits, but those always charged.
    if denied then
      stage_denied = true
    end
    for w = 0, writes * 7 - 1, 7 do
      if not denied or pending[w + 7] then
        write(pending[w + 1], pending[w + 2], pending[w + 3], pending[w + 4], pending[w + 5], pending[w + 6])
      end
    end
    out[1 + REPLY_EVALUATED] = g
    pos = strides + checks * CHECK_STRIDE
    first = first + checks
  end

  for i = at, size do
    out[i] = nil
  end
  return out, last_pos, last_key
end

local answer
if head >= 0 then
  answer = decide_call(head, 1 + ARG_HEADER, 1)
else
  -- A run: after the header, each call's own number of groups, then its groups.
  answer = {}
  local pos, first = 1 + ARG_HEADER, 1
  for r = 1, -head do
    answer[r], pos, first = decide_call(ARGV[pos] + 0, pos + 1, first)
  end
end

for w = 1, nwritten do
  local key = written[w]
  local value, n = strings[key], numbers and numbers[key]
  if n then
    value = n[4] and format(D3, n[1], n[2], n[3]) or format(D, n[1])
  end
  call('SET', key, value, 'PX', format(D, ttls[key]))
end
return answer
