#!/usr/bin/env bash
# Outages of Redis under load, against the gateway: what each failure mode answers while Redis is killed, paused,
# slowed or starved, how it recovers, two replicas on one Redis, and a CPU-starved gateway with Redis healthy.
#
# Starts (on loopback only) one redis-server, the benchmark upstream, and five gateways on it: one per failure mode
# (open, closed, local; each with its own key prefix) and two replicas sharing a prefix (local, replicas: 2). Every
# gateway has a 50 ms store timeout, the edge tier and a per-user limit of 2,000/s that the load exceeds, so a healthy
# store answers 2xx and 429 and an outage shows in 503s (closed), in 2xx beyond the limit (open) or in the local
# share (local). Phases, each a fixed wrk run of SECONDS per gateway (default 5 s):
#   healthy      Redis up
#   killed       Redis SIGKILLed before the phase; started again (empty) after it
#   restarted    the first SECONDS after that restart: recovery
#   paused       Redis SIGSTOPped (a hung server: connections open, nothing answered); SIGCONT after
#   slowed       a loop of DEBUG SLEEP 0.1 with 0.1 s between: Redis stalls 100 ms out of every 200
#   redis-cpu    Redis pinned to CPU 1 beside 4 busy loops pinned there too
#   gw-starved   Redis healthy on CPU 1; the gateway under load pinned to CPU 0 beside 4 busy loops
#   replicas     the two replicas loaded at once, healthy, then with Redis killed
# Per phase and gateway: requests/s, status counts, p99 (wrk, through a Lua script that counts statuses), and from the
# gateway's /metrics (admin port) the store decisions, those over the timeout (floodgate_store_duration_seconds above
# its 0.05 bucket) and the store's failures by reason; breaker openings are counted in the gateway's log.
# Bounded: about 3 minutes of load and waits after the builds. Every process it starts is recorded and stopped by its
# PID on exit (a stopped Redis is continued first); it stops nothing else.
# Usage: bench/chaos/run.sh [seconds per phase, default 5] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-5}
connections=${2:-32}
[ "$(nproc)" -ge 2 ] || { echo "chaos: needs 2 CPUs (the starved phases pin to CPU 0 and CPU 1)"; exit 1; }
command -v taskset >/dev/null || { echo "chaos: taskset is missing (apt-get install util-linux)"; exit 1; }

. bench/gateway/common.sh

UP=7401 REDIS=7479
declare -A port=([open]=7411 [closed]=7413 [local]=7415 [replica-1]=7417 [replica-2]=7419)
for p in $UP $REDIS "${port[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "chaos: port $p is taken"; exit 1; fi
done

# Redis and the busy loops are tracked apart from common.sh's pids: Redis is killed and started again (a dead PID must
# not stay in a list that is killed at exit), and may be stopped (SIGCONT first, or SIGTERM waits for ever).
redis_pid=""
hogs=()
slow_pid=""
start_redis() {
  redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning \
    --enable-debug-command local >/dev/null 2>&1 &
  redis_pid=$!
  wait_port $REDIS
}
kill_redis() {
  [ -n "$redis_pid" ] || return 0
  kill -CONT "$redis_pid" 2>/dev/null || true
  kill -KILL "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
}
start_hogs() { # $1 = CPU: four busy loops pinned there
  for _ in 1 2 3 4; do
    taskset -c "$1" bash -c 'while :; do :; done' &
    hogs+=($!)
  done
}
stop_hogs() {
  for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done
  for h in "${hogs[@]}"; do wait "$h" 2>/dev/null || true; done
  hogs=()
}
stop_slow() {
  [ -n "$slow_pid" ] || return 0
  kill "$slow_pid" 2>/dev/null || true
  wait "$slow_pid" 2>/dev/null || true
  slow_pid=""
}
trap 'stop_slow; stop_hogs; kill_redis; cleanup' EXIT

chaos_policy() { # $1 = on_failure, $2 = key prefix, $3 = replicas
  cat <<YAML
upstream: http://127.0.0.1:$UP
store: { kind: redis, configuration: "127.0.0.1:$REDIS", on_failure: $1, replicas: $3, timeout: 50ms, key_prefix: $2 }
identity:
  jwt:
    keys: [$work/jwks.json]
    issuer: floodgate-bench
    audiences: [floodgate-bench]
  anonymous: reject
edge:
  - name: ip-flood
    key: [client_ip]
    limit: 10M/min
user:
  - name: per-user
    key: [subject]
    limit: 2000/s
YAML
}

start_redis
$helper upstream $UP & pids+=($!)
token=$($helper token "$work")
chaos_policy open chaos-open 1 > "$work/open.yaml"
chaos_policy closed chaos-closed 1 > "$work/closed.yaml"
chaos_policy local chaos-local 1 > "$work/local.yaml"
chaos_policy local chaos-shared 2 > "$work/replica.yaml"
declare -A gw_pid
for name in open closed local replica-1 replica-2; do
  file="$work/${name%-[12]}.yaml"
  $gateway run --policy "$file" --listen "http://127.0.0.1:${port[$name]}" --admin "http://127.0.0.1:$((port[$name] + 1))" \
    --no-watch --log-level Warning > "$work/$name.log" 2>&1 &
  pids+=($!)
  gw_pid[$name]=$!
done
for name in "${!port[@]}"; do wait_port "${port[$name]}"; done
wait_port $UP

# wrk counts statuses in each thread's Lua state; done() adds them up and prints one line.
cat > "$work/status.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local c = { ok = 0, limited = 0, unavailable = 0, other = 0 }
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      if status >= 200 and status < 300 then c.ok = c.ok + n
      elseif status == 429 then c.limited = c.limited + n
      elseif status == 503 then c.unavailable = c.unavailable + n
      else c.other = c.other + n end
    end
  end
  local other = c.other + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("wrk %d %.3f %d %d %d %d %.1f\n", summary.requests, summary.duration / 1e6, c.ok, c.limited,
    c.unavailable, other, latency:percentile(99) / 1000))
end
LUA

load() { # $1 = gateway, $2 = duration: prints "wrk requests seconds 2xx 429 503 other p99ms"
  wrk -t2 -c"$connections" -d"$2" --timeout 5s -s "$work/status.lua" -H "Authorization: Bearer $token" \
    "http://127.0.0.1:${port[$1]}/bench" | awk '$1 == "wrk"'
}

scrape() { # $1 = gateway: "decisions over-50ms timeout late circuit_open error openings"
  curl -s "http://127.0.0.1:$((port[$1] + 1))/metrics" | awk -v openings="$(grep -c 'circuit breaker of .* open' "$work/$1.log" || true)" '
    /^floodgate_store_duration_seconds_count/ { n += $NF }
    /^floodgate_store_duration_seconds_bucket/ && /le="0.05"/ { fast += $NF }
    /^floodgate_redis_failures_total/ {
      if ($0 ~ /reason="timeout"/) t += $NF; else if ($0 ~ /reason="late"/) l += $NF
      else if ($0 ~ /reason="circuit_open"/) o += $NF; else if ($0 ~ /reason="error"/) e += $NF }
    END { printf "%d %d %d %d %d %d %d\n", n, n - fast, t, l, o, e, openings }'
}

phase() { # $1 = phase name, then gateways loaded together
  local name=$1 g
  shift
  declare -A before
  for g in "$@"; do before[$g]=$(scrape "$g"); done
  local loads=()
  for g in "$@"; do
    load "$g" "${seconds}s" > "$work/wrk-$g" &
    loads+=($!)
  done
  wait "${loads[@]}"
  for g in "$@"; do
    read -r _ requests duration ok limited unavailable other p99 < "$work/wrk-$g"
    read -r n1 slow1 t1 l1 o1 e1 b1 <<< "$(scrape "$g")"
    read -r n0 slow0 t0 l0 o0 e0 b0 <<< "${before[$g]}"
    printf '%-15s %-10s %9.0f %8d %8d %8d %6d %8.1f %10d %8d %8d %8d %9d %8d %9d\n' "$name" "$g" \
      "$(awk -v r="$requests" -v d="$duration" 'BEGIN { print r / d }')" "$ok" "$limited" "$unavailable" "$other" "$p99" \
      $((n1 - n0)) $((slow1 - slow0)) $((t1 - t0)) $((l1 - l0)) $((o1 - o0)) $((e1 - e0)) $((b1 - b0)) | tee -a "$work/results"
  done
}
modes() { for m in open closed local; do phase "$1" "$m"; done; }

echo "chaos: ${seconds} s a phase and gateway, wrk -t2 -c$connections, loopback, $(nproc) cores, $(redis-server --version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for m in open closed local replica-1 replica-2; do load "$m" 2s >/dev/null; done # warm-up (JIT, connections)
printf '%-15s %-10s %9s %8s %8s %8s %6s %8s %10s %8s %8s %8s %9s %8s %9s\n' \
  phase gateway "req/s" 2xx 429 503 other "p99 ms" decisions ">50ms" timeout late "circ_open" error openings

modes healthy

kill_redis
modes killed
start_redis
modes restarted

kill -STOP "$redis_pid"
modes paused
kill -CONT "$redis_pid"
sleep 2 # the store's breakers probe every 2 s: let them close before the next phase

(while :; do redis-cli -p $REDIS DEBUG SLEEP 0.1 >/dev/null 2>&1 || true; sleep 0.1; done) &
slow_pid=$!
modes slowed
stop_slow
sleep 2

taskset -a -cp 1 "$redis_pid" >/dev/null
start_hogs 1
modes redis-cpu
stop_hogs
sleep 2

for m in open closed local; do
  taskset -a -cp 0 "${gw_pid[$m]}" >/dev/null
  start_hogs 0
  phase gw-starved "$m"
  stop_hogs
  taskset -a -cp 0,1 "${gw_pid[$m]}" >/dev/null
done
taskset -a -cp 0,1 "$redis_pid" >/dev/null

phase replicas replica-1 replica-2
kill_redis
phase replicas-killed replica-1 replica-2
start_redis
echo "chaos: done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
