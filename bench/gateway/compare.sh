#!/usr/bin/env bash
# Compares builds of the gateway on Redis (strict), each at a git revision, on one redis-server and one upstream:
# rounds of a fixed wrk run per build, one after the other, so every build sees the same background noise. Prints
# requests/s and the CPU time per request of the gateway, redis-server and the upstream (utime + stime from
# /proc/<pid>/stat), per round and as medians. CPU per request moves far less with the shared machine's noise than
# requests/s does, so it tells close builds apart where bench/gateway/run.sh cannot.
# Loopback only, bounded in time; every process and worktree this script makes is removed on exit.
# Usage: bench/gateway/compare.sh [rounds=4] [duration=5s] rev...   (e.g. compare.sh 4 5s ff97827 HEAD)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-4}
duration=${2:-5s}
shift 2 || true
[ $# -ge 1 ] || { echo "usage: $0 [rounds] [duration] rev..." >&2; exit 2; }

. bench/gateway/common.sh

builds=()
trees=()
remove_trees() { for t in "${trees[@]}"; do git worktree remove --force "$t" 2>/dev/null || true; done; }
trap 'remove_trees; git worktree prune; cleanup' EXIT
for rev in "$@"; do
  tree="$work/tree-${#builds[@]}"
  git worktree add -q --detach "$tree" "$rev"
  trees+=("$tree")
  dotnet build "$tree/src/Floodgate.Gateway" -c Release -nologo -clp:ErrorsOnly -o "$work/build-${#builds[@]}" >/dev/null
  builds+=("$work/build-${#builds[@]}")
done

UP=6201 REDIS=6984
redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null & pids+=($!); redis_pid=$!
$helper upstream $UP & pids+=($!); upstream_pid=$!
token=$($helper token "$work")
wait_port $REDIS
ports=() gateway_pids=()
for i in "${!builds[@]}"; do
  port=$((6210 + 2 * i))
  policy "{ kind: redis, configuration: \"127.0.0.1:$REDIS\", on_failure: closed, timeout: 1s, key_prefix: build$i }" > "$work/$i.yaml"
  dotnet "${builds[$i]}/Floodgate.Gateway.dll" run --policy "$work/$i.yaml" --listen http://127.0.0.1:$port --admin http://127.0.0.1:$((port + 1)) --no-watch --log-level Critical & pids+=($!)
  ports+=($port); gateway_pids+=($!)
done
for port in $UP "${ports[@]}"; do wait_port $port; done
for port in "${ports[@]}"; do # warm-up: tiered compilation settles in about 10 s
  wrk -t2 -c32 -d10s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/bench" >/dev/null
done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "wrk -t2 -c32 -d$duration per build and round, loopback, $(nproc) cores; CPU time per request in microseconds"
for round in $(seq 1 "$rounds"); do
  for i in "${!builds[@]}"; do
    p0=$(ticks "${gateway_pids[$i]}"); r0=$(ticks $redis_pid); u0=$(ticks $upstream_pid)
    n=$(wrk -t2 -c32 -d"$duration" -H "Authorization: Bearer $token" "http://127.0.0.1:${ports[$i]}/bench" | awk '/requests in/ { print $1 }')
    p1=$(ticks "${gateway_pids[$i]}"); r1=$(ticks $redis_pid); u1=$(ticks $upstream_pid)
    awk -v name="$(sed -n "$((i + 1))p" <(printf '%s\n' "$@"))" -v n="$n" -v d="${duration%s}" -v p=$((p1 - p0)) -v r=$((r1 - r0)) -v u=$((u1 - u0)) -v hz="$hz" \
      'BEGIN { f = 1000000 / hz; printf "%-12s %8.0f req/s   gateway %6.1f   redis-server %5.1f   upstream %5.1f   total %6.1f\n", name, n / d, p * f / n, r * f / n, u * f / n, (p + r + u) * f / n }' \
      | tee -a "$work/results"
  done
done

echo
echo "medians over $rounds rounds (requests/s, and the round of median total CPU)"
for rev in "$@"; do
  rps=$(awk -v name="$rev" '$1 == name { print $2 }' "$work/results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  awk -v name="$rev" '$1 == name' "$work/results" | sort -n -k13 | awk -v rps="$rps" '{ row[NR] = $0 } END { $0 = row[int((NR + 1) / 2)]; $2 = rps; print }'
done
