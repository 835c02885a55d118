#!/usr/bin/env bash
# CPU time per request of each process, at steady state, for:
#   (b) the gateway on the memory store, (c) the gateway on Redis (strict), (e) bare YARP plus one trivial Redis call.
# Reads utime + stime from /proc/<pid>/stat before and after a fixed wrk run. Loopback only, bounded in time.
# Usage: bench/gateway/cpu.sh [duration=8s] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-8s}
connections=${2:-32}
for tool in wrk redis-server; do
  command -v "$tool" >/dev/null || { echo "cpu.sh: $tool is missing; bench/gateway/run.sh installs it" >&2; exit 1; }
done
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Floodgate.Gateway -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet build bench/Floodgate.Gateway.Benchmarks -c Release -nologo -clp:ErrorsOnly >/dev/null
gateway="dotnet src/Floodgate.Gateway/bin/Release/net10.0/Floodgate.Gateway.dll"
helper="dotnet bench/Floodgate.Gateway.Benchmarks/bin/Release/net10.0/Floodgate.Gateway.Benchmarks.dll"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

UP=5801 E=5802 C=5803 B=5804 REDIS=6584
wait_port() {
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "cpu.sh: nothing listens on port $1" >&2; exit 1
}

redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null & pids+=($!); redis_pid=$!
$helper upstream $UP & pids+=($!); upstream_pid=$!
token=$($helper token "$work")
wait_port $REDIS
$helper bare-redis $E http://127.0.0.1:$UP 127.0.0.1:$REDIS & pids+=($!); e_pid=$!
policy() {
  cat <<YAML
upstream: http://127.0.0.1:$UP
store: $1
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
    limit: 10M/min
YAML
}
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s }" > "$work/c.yaml"
policy '{ kind: memory }' > "$work/b.yaml"
$gateway run --policy "$work/c.yaml" --listen http://127.0.0.1:$C --admin http://127.0.0.1:5813 --no-watch --log-level Warning & pids+=($!); c_pid=$!
$gateway run --policy "$work/b.yaml" --listen http://127.0.0.1:$B --admin http://127.0.0.1:5814 --no-watch --log-level Warning & pids+=($!); b_pid=$!
for port in $UP $E $C $B; do wait_port $port; done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for port in $E $C $B; do # warm-up: tiered compilation settles in about 10 s
  wrk -t2 -c"$connections" -d10s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/bench" >/dev/null
done
echo "wrk -t2 -c$connections -d$duration per case, loopback, $(nproc) cores; CPU time per request in microseconds"
for case in "e-yarp-redis-call $E $e_pid" "c-gateway-redis $C $c_pid" "b-gateway-memory $B $b_pid"; do
  set -- $case
  p0=$(ticks "$3"); r0=$(ticks $redis_pid); u0=$(ticks $upstream_pid)
  n=$(wrk -t2 -c"$connections" -d"$duration" -H "Authorization: Bearer $token" "http://127.0.0.1:$2/bench" | awk '/requests in/ { print $1 }')
  p1=$(ticks "$3"); r1=$(ticks $redis_pid); u1=$(ticks $upstream_pid)
  awk -v c="$1" -v n="$n" -v p=$((p1 - p0)) -v r=$((r1 - r0)) -v u=$((u1 - u0)) -v hz="$hz" \
    'BEGIN { f = 1000000 / hz; printf "%-20s %8d requests   proxy %6.1f   redis-server %6.1f   upstream %6.1f\n", c, n, p * f / n, r * f / n, u * f / n }'
done
