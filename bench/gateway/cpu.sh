#!/usr/bin/env bash
# CPU time per request of each process, at steady state, for:
#   (a) a bare YARP proxy (the baseline), (b) the gateway on the memory store, (c) the gateway on Redis (strict), (e) bare YARP plus one trivial Redis call,
#   (f) (c) with a ban on the edge rule.
# Reads utime + stime from /proc/<pid>/stat before and after a fixed wrk run. Loopback only, bounded in time.
# Usage: bench/gateway/cpu.sh [duration=8s] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-8s}
connections=${2:-32}
. bench/gateway/common.sh

UP=5801 E=5802 C=5803 B=5804 F=5805 A=5806 REDIS=6584
redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null & pids+=($!); redis_pid=$!
$helper upstream $UP & pids+=($!); upstream_pid=$!
token=$($helper token "$work")
wait_port $REDIS
$helper bare-redis $E http://127.0.0.1:$UP 127.0.0.1:$REDIS & pids+=($!); e_pid=$!
$helper bare $A http://127.0.0.1:$UP & pids+=($!); a_pid=$!
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s }" > "$work/c.yaml"
policy '{ kind: memory }' > "$work/b.yaml"
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s, key_prefix: banned }" "" "ban: 60s" > "$work/f.yaml"
$gateway run --policy "$work/c.yaml" --listen http://127.0.0.1:$C --admin http://127.0.0.1:5813 --no-watch --log-level Warning & pids+=($!); c_pid=$!
$gateway run --policy "$work/b.yaml" --listen http://127.0.0.1:$B --admin http://127.0.0.1:5814 --no-watch --log-level Warning & pids+=($!); b_pid=$!
$gateway run --policy "$work/f.yaml" --listen http://127.0.0.1:$F --admin http://127.0.0.1:5815 --no-watch --log-level Warning & pids+=($!); f_pid=$!
for port in $UP $E $C $B $F $A; do wait_port $port; done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for port in $A $E $C $B $F; do # warm-up: tiered compilation settles in about 10 s
  wrk -t2 -c"$connections" -d10s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/bench" >/dev/null
done
echo "wrk -t2 -c$connections -d$duration per case, loopback, $(nproc) cores; CPU time per request in microseconds"
for case in "a-bare-yarp $A $a_pid" "e-yarp-redis-call $E $e_pid" "c-gateway-redis $C $c_pid" "f-redis-with-ban $F $f_pid" "b-gateway-memory $B $b_pid"; do
  set -- $case
  p0=$(ticks "$3"); r0=$(ticks $redis_pid); u0=$(ticks $upstream_pid)
  n=$(wrk -t2 -c"$connections" -d"$duration" -H "Authorization: Bearer $token" "http://127.0.0.1:$2/bench" | awk '/requests in/ { print $1 }')
  p1=$(ticks "$3"); r1=$(ticks $redis_pid); u1=$(ticks $upstream_pid)
  awk -v c="$1" -v n="$n" -v p=$((p1 - p0)) -v r=$((r1 - r0)) -v u=$((u1 - u0)) -v hz="$hz" \
    'BEGIN { f = 1000000 / hz; printf "%-20s %8d requests   proxy %6.1f   redis-server %6.1f   upstream %6.1f\n", c, n, p * f / n, r * f / n, u * f / n }'
done
