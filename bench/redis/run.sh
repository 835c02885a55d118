#!/usr/bin/env bash
# Benchmarks the Redis store against a redis-server of its own on a free loopback port, in one run:
#   1. redis-benchmark's EVALSHA ceiling for the store's own script deciding one gcra key (-P 1 and -P 16),
#   2. the store's decisions/s and p50/p99 latency at 256 decisions in flight over 10,000 keys (gcra),
#   3. Redis round trips per request with the over-limit cache off and on, half of the keys over their limit.
# Bounded: every step has a fixed request count or duration; the server is stopped by its PID on exit.
# Usage: bench/redis/run.sh [load seconds, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install redis-server redis-tools)"; exit 1; }
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --loglevel warning >/dev/null 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

dotnet build bench/Floodgate.Redis.Benchmarks -c Release -nologo -clp:ErrorsOnly >/dev/null
driver="bench/Floodgate.Redis.Benchmarks/bin/Release/net10.0/Floodgate.Redis.Benchmarks.dll"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f3), dotnet $(dotnet --version)"

# The same script the store runs, deciding one gcra key (1,000,000/s, so every call writes), keys over 10,000 values.
sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat src/Floodgate.Redis/decide.lua)")
for pipeline in 1 16; do
  rps=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 256 -n 300000 -r 10000 -P "$pipeline" --csv \
    EVALSHA "$sha" 1 'rb:{__rand_int__}:k' '' 1 0 1 0 1 1000000 1000000 0 0 0 0 | tail -n 1 | cut -d, -f2 | tr -d '"')
  echo "redis-benchmark EVALSHA -c 256 -P $pipeline: $rps requests/s"
done

dotnet "$driver" load "127.0.0.1:$port" "$seconds" 256 10000
dotnet "$driver" roundtrips "127.0.0.1:$port" 100000
