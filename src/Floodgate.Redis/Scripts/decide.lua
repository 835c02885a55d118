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

-- decide_call, which decides one call, is decide_call.lua: the store loads this script with that file in place of
-- the next line (RedisStore.LoadScript).
-- @include decide_call.lua

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
