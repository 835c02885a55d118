-- Floodgate: the decision of one call of decide.lua, part of that script (its @include line is replaced by this file
-- when the store loads it). It reads the script's locals: now, pad, state, strings, numbers, written, the helpers
-- permits_of and write, and the formats and math functions. See decide.lua's header for the wire layout.

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
