#!/usr/bin/env bash
# Gateway load test: requests/s and p50/p99 latency, in one run, through the same upstream:
#   (a) a bare YARP proxy, no limiting
#   (b) the gateway: edge + user tiers, JWT validation (ES256, static JWKS), memory store
#   (c) the same on Redis (a local redis-server started by this script)
# Loopback only, fixed duration. Installs wrk (and redis-server) from Debian's apt when missing.
# Usage: bench/gateway/run.sh [duration=10s] [connections=32] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
connections=${2:-32}
threads=${3:-2}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "run.sh: installing $2 (Debian package)"
    local sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >/dev/null
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}
need wrk wrk
need redis-server redis-server

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

UP=5701 BARE=5702 MEM=5703 MEM_ADMIN=5713 RED=5704 RED_ADMIN=5714 REDIS=6479

wait_port() { # bounded wait for a port to accept connections
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "run.sh: nothing listens on port $1" >&2; exit 1
}

redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null & pids+=($!)
$helper upstream $UP & pids+=($!)
$helper bare $BARE http://127.0.0.1:$UP & pids+=($!)
token=$($helper token "$work")

policy() { # $1 = store line
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
policy '{ kind: memory }' > "$work/memory.yaml"
policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: open }" > "$work/redis.yaml"

wait_port $REDIS
$gateway run --policy "$work/memory.yaml" --listen http://127.0.0.1:$MEM --admin http://127.0.0.1:$MEM_ADMIN --no-watch --log-level Warning & pids+=($!)
$gateway run --policy "$work/redis.yaml" --listen http://127.0.0.1:$RED --admin http://127.0.0.1:$RED_ADMIN --no-watch --log-level Warning & pids+=($!)
for port in $UP $BARE $MEM $RED; do wait_port $port; done

# Every case must answer 200 before it is measured.
for port in $BARE $MEM $RED; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/bench")
  [ "$code" = 200 ] || { echo "run.sh: port $port answered $code"; exit 1; }
done

measure() { # $1 = label, $2 = port; prints "label rps p50 p99"
  wrk -t"$threads" -c"$connections" -d5s -H "Authorization: Bearer $token" "http://127.0.0.1:$2/bench" >/dev/null # warm-up
  local out
  out=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$2/bench")
  local rps p50 p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "$1 $rps $p50 $p99 ${non2xx:-0}"
}

a=$(measure "a-bare-yarp" $BARE)
b=$(measure "b-gateway-memory" $MEM)
c=$(measure "c-gateway-redis" $RED)

echo
echo "wrk -t$threads -c$connections -d$duration, loopback, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-20s %12s %10s %10s %8s %8s\n' case requests/s p50 p99 non-2xx "vs (a)"
ra=$(echo "$a" | awk '{print $2}')
for row in "$a" "$b" "$c"; do
  echo "$row" | awk -v base="$ra" '{ printf "%-20s %12s %10s %10s %8s %7.0f%%\n", $1, $2, $3, $4, $5, 100 * $2 / base }'
done
