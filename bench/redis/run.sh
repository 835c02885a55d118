#!/usr/bin/env bash
# Benchmarks the Redis store against a redis-server of its own on a free loopback port, in one run:
#   1. redis-benchmark's EVALSHA ceiling for the store's own script deciding one gcra key (-P 1 and -P 16),
#   2. the store's decisions/s and p50/p99 latency at 256 decisions in flight over 10,000 keys (gcra), next to the
#      same EVALSHA load issued through StackExchange.Redis directly (the .NET client's own ceiling),
#   3. Redis round trips per request with the over-limit cache off and on, half of the keys over their limit.
# Bounded: every step has a fixed request count or duration; the server is stopped by its PID on exit.
#   4. with BDN=1, the BenchmarkDotNet suite (one decision: strict round trip, over-limit cache, leased slice).
# Usage: [ROUNDS=3] [BDN=1] bench/redis/run.sh [load seconds per round, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"

. bench/redis/common.sh

dotnet build bench/Floodgate.Redis.Benchmarks -c Release -nologo -clp:ErrorsOnly >/dev/null
driver="bench/Floodgate.Redis.Benchmarks/bin/Release/net10.0/Floodgate.Redis.Benchmarks.dll"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f3), dotnet $(dotnet --version)"

# The same script the store runs, deciding one gcra key (1,000,000/s, so every call writes), keys over 10,000 values.
# The machine is shared, so the ceiling and the store are measured in alternating rounds and compared round by round.
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(bench/redis/decide-script.sh)")
# The arguments the store sends for one enforced gcra check of 1,000,000/s (see decide.lua's header): server time, one
# group (stage 0, one check), algorithm 0, cost 1, mode 0, interval 1 us, tolerance 999999 us, burst 1000000, p4..p7 0.
# One call first: a layout that no longer matches the script must stop the run, not be benchmarked as an error reply.
reply=$(redis-cli -p "$port" EVALSHA "$sha" 1 'rb:{check}:k' '' 1 0 1 0 1 0 1 999999 1000000 0 0 0 0 2>&1 | tr '\n' ' ')
case "$reply" in
  "1 "*" 1 1 "*) ;;
  *) echo "run.sh: the script refused the benchmark's arguments: $reply"; exit 1 ;;
esac
ceiling() {
  redis-benchmark -h 127.0.0.1 -p "$port" -c 256 -n "$2" -r 10000 -P "$1" --csv \
    EVALSHA "$sha" 1 'rb:{__rand_int__}:k' '' 1 0 1 0 1 0 1 999999 1000000 0 0 0 0 | tail -n 1 | cut -d, -f2 | tr -d '"'
}
ratios=()
for round in $(seq 1 "${ROUNDS:-3}"); do
  p1=$(ceiling 1 60000)
  p16=$(ceiling 16 200000)
  raw=$(dotnet "$driver" raw "127.0.0.1:$port" "$seconds" 256 10000)
  line=$(dotnet "$driver" load "127.0.0.1:$port" "$seconds" 256 10000)
  dps=$(echo "$line" | sed -E 's/.*= ([0-9]+) decisions\/s.*/\1/')
  ratio=$(python3 -c "print(f'{$dps / $p16 * 100:.0f}')")
  ratios+=("$ratio")
  echo "round $round: redis-benchmark EVALSHA -c 256 -P 1: $p1/s, -P 16: $p16/s; store at 256 in flight: $dps/s = $ratio% of -P 16"
  echo "round $round: $raw"
  echo "round $round: $line"
done
echo "median store / -P 16 ceiling: $(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (${#ratios[@]} + 1) / 2 ))p")%"

# The same load with 16 in flight: latency without 256-deep queueing.
dotnet "$driver" load "127.0.0.1:$port" "$seconds" 16 10000
dotnet "$driver" roundtrips "127.0.0.1:$port" 100000

if [ "${BDN:-0}" = "1" ]; then
  FLOODGATE_REDIS="127.0.0.1:$port" dotnet "$driver" bdn --filter '*' --exporters github
fi
