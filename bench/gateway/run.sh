#!/usr/bin/env bash
# Gateway load test: requests/s and p50/p99 latency, in one run, through the same upstream:
#   (a) a bare YARP proxy, no limiting
#   (b) the gateway: edge + user tiers, JWT validation (ES256, static JWKS), memory store
#   (c) the same on Redis (a local redis-server started by this script), strict: every decision a round trip
#   (d) the same on Redis with leased slices of 100 (each replica spends slices locally; bounded overshoot)
#   (e) a bare YARP proxy that makes one trivial Redis script call per request and ignores it: the floor of any
#       limiter that keeps its state strictly in Redis, one round trip per request, to read (c) against
#   (f) (c) with a ban on the edge rule: the ban's probe rides in the same script call, so it should cost about nothing
#   (g) a bare YARP proxy that makes (c)'s own decision script call per request (same keys, same arguments) and ignores
#       it: (c) without Floodgate around the call, to tell the script's cost from the gateway's
# Loopback only, fixed duration. Installs wrk (and redis-server) from Debian's apt when missing.
# The machine is shared and noisy, so the cases are measured in interleaved rounds and each figure is the median.
# Every case is warmed up first (tiered compilation settles in about 10 s), so the rounds measure steady state.
# Usage: bench/gateway/run.sh [duration=5s] [connections=32] [threads=2] [rounds=3] [warmup=10s]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-5s}
connections=${2:-32}
threads=${3:-2}
rounds=${4:-3}
warmup=${5:-10s}

. bench/gateway/common.sh

UP=5701 BARE=5702 BARE_REDIS=5706 MEM=5703 MEM_ADMIN=5713 RED=5704 RED_ADMIN=5714 LEASED=5705 LEASED_ADMIN=5715 BAN=5707 BAN_ADMIN=5717 DECIDE=5708 REDIS=6479

redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null & pids+=($!)
$helper upstream $UP & pids+=($!)
$helper bare $BARE http://127.0.0.1:$UP & pids+=($!)
token=$($helper token "$work")

policy '{ kind: memory }' > "$work/memory.yaml"
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s }" > "$work/redis.yaml"
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s, key_prefix: leased }" "leased_slice: 100" > "$work/leased.yaml"
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s, key_prefix: banned }" "" "ban: 60s" > "$work/ban.yaml"

wait_port $REDIS
$helper bare-redis $BARE_REDIS http://127.0.0.1:$UP 127.0.0.1:$REDIS & pids+=($!)
bench/redis/decide-script.sh > "$work/decide.lua"
$helper bare-decide $DECIDE http://127.0.0.1:$UP 127.0.0.1:$REDIS "$work/decide.lua" & pids+=($!)
$gateway run --policy "$work/memory.yaml" --listen http://127.0.0.1:$MEM --admin http://127.0.0.1:$MEM_ADMIN --no-watch --log-level Warning & pids+=($!)
$gateway run --policy "$work/redis.yaml" --listen http://127.0.0.1:$RED --admin http://127.0.0.1:$RED_ADMIN --no-watch --log-level Warning & pids+=($!)
$gateway run --policy "$work/leased.yaml" --listen http://127.0.0.1:$LEASED --admin http://127.0.0.1:$LEASED_ADMIN --no-watch --log-level Warning & pids+=($!)
$gateway run --policy "$work/ban.yaml" --listen http://127.0.0.1:$BAN --admin http://127.0.0.1:$BAN_ADMIN --no-watch --log-level Warning & pids+=($!)
for port in $UP $BARE $BARE_REDIS $MEM $RED $LEASED $BAN $DECIDE; do wait_port $port; done

# Every case must answer 200 before it is measured.
for port in $BARE $BARE_REDIS $MEM $RED $LEASED $BAN $DECIDE; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/bench")
  [ "$code" = 200 ] || { echo "run.sh: port $port answered $code"; exit 1; }
done

run_wrk() { # $1 = port; prints "rps p50_ms p99_ms non2xx"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$1/bench" | awk '
    function ms(v) { if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000; if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0; if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000; return v }
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } /Non-2xx/ { bad = $NF }
    END { printf "%s %.2f %.2f %d\n", rps, p50, p99, bad }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A port=([a-bare-yarp]=$BARE [b-gateway-memory]=$MEM [c-gateway-redis]=$RED [d-redis-leased]=$LEASED [e-yarp-redis-call]=$BARE_REDIS [f-redis-with-ban]=$BAN [g-yarp-decide-call]=$DECIDE)
cases=(a-bare-yarp b-gateway-memory c-gateway-redis d-redis-leased e-yarp-redis-call f-redis-with-ban g-yarp-decide-call)
for name in "${cases[@]}"; do # warm-up
  wrk -t"$threads" -c"$connections" -d"$warmup" -H "Authorization: Bearer $token" "http://127.0.0.1:${port[$name]}/bench" >/dev/null
done
for round in $(seq 1 "$rounds"); do
  for name in "${cases[@]}"; do
    echo "$name $(run_wrk "${port[$name]}")" | tee -a "$work/results"
  done
done

echo
echo "wrk -t$threads -c$connections -d$duration x $rounds interleaved rounds (medians), loopback, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-20s %12s %10s %10s %8s %8s\n' case requests/s p50-ms p99-ms non-2xx "vs (a)"
base=$(awk '$1 == "a-bare-yarp" { print $2 }' "$work/results" | median)
for name in "${cases[@]}"; do
  rps=$(awk -v n="$name" '$1 == n { print $2 }' "$work/results" | median)
  p50=$(awk -v n="$name" '$1 == n { print $3 }' "$work/results" | median)
  p99=$(awk -v n="$name" '$1 == n { print $4 }' "$work/results" | median)
  bad=$(awk -v n="$name" '$1 == n { s += $5 } END { print s + 0 }' "$work/results")
  awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v x="$bad" -v base="$base" 'BEGIN { printf "%-20s %12.0f %10.2f %10.2f %8d %7.0f%%\n", n, r, a, b, x, 100 * r / base }'
done
c=$(awk '$1 == "c-gateway-redis" { print $2 }' "$work/results" | median)
e=$(awk '$1 == "e-yarp-redis-call" { print $2 }' "$work/results" | median)
g=$(awk '$1 == "g-yarp-decide-call" { print $2 }' "$work/results" | median)
awk -v c="$c" -v e="$e" -v g="$g" 'BEGIN { printf "(c) against (e), the floor of one Redis round trip per request: %.0f%%; against (g), the same script call without Floodgate: %.0f%%\n", 100 * c / e, 100 * c / g }'
