#!/usr/bin/env bash
# Decisions on a healthy Redis while the deciding process is CPU-starved, a base revision's store against this
# checkout's: redis-server pinned to CPU 1, the load (bench/Floodgate.Redis.Benchmarks `starved`) pinned to CPU 0 with
# threads spinning beside it in its own process, so the store's process is starved and Redis is not. Both builds run
# this checkout's benchmark code (copied into a worktree of the base), in alternating rounds on one redis-server.
# Prints per round and build the share of decisions answered by on_failure, by reason, and the breaker's openings.
# Also samples Redis's own latency (redis-cli --latency on CPU 1) meanwhile: Redis stays healthy.
# Loopback only, bounded (rounds x 2 builds x (seconds + 3 s of unstarved warm-up)); every process and the worktree
# it makes are removed on exit.
# hogs: threads spinning beside the load; negative (e.g. -8), as many CPU-bound loops of 4 ms work items through the
# load's own thread pool, as a gateway busy with its own requests is (its continuations wait in the pool's queue).
# Usage: bench/redis/starved.sh [base revision, default main] [rounds, default 3] [seconds, default 15] [hogs, default -8]
#        [in flight, default 64] [decisions/s offered, default 4000] [timeout ms, default 50]
set -euo pipefail
cd "$(dirname "$0")/../.."
base="${1:-main}"
rounds="${2:-3}"
seconds="${3:-15}"
hogs="${4:--8}"
inflight="${5:-64}"
rate="${6:-4000}"
timeout_ms="${7:-50}"
[ "$(nproc)" -ge 2 ] || { echo "starved.sh: needs 2 CPUs (Redis on one, the starved load on the other)"; exit 1; }
command -v taskset >/dev/null || { echo "starved.sh: taskset is missing (apt-get install util-linux)"; exit 1; }

. bench/redis/common.sh
# common.sh started redis-server unpinned: move it (and its threads) to CPU 1.
taskset -a -cp 1 "$pid" >/dev/null

tree="$dir/base-tree"
trap 'git worktree remove --force "$tree" 2>/dev/null || true; git worktree prune; cleanup' EXIT
git worktree add -q --detach "$tree" "$base"
rm -rf "$tree/bench/Floodgate.Redis.Benchmarks"
cp -r bench/Floodgate.Redis.Benchmarks "$tree/bench/"
rm -rf "$tree/bench/Floodgate.Redis.Benchmarks/bin" "$tree/bench/Floodgate.Redis.Benchmarks/obj"
# A base from before the engine's Keys namespace and lease renewals (2026-12-07; the breaker's lateness change is one)
# has StoreKey in Floodgate.Stores, which every file uses too, and no RenewAsync for the renewals mode: it builds the
# starved mode alone.
if [ ! -d "$tree/src/Floodgate/Keys" ]; then
  sed -i '/^using Floodgate\.Keys;$/d' "$tree"/bench/Floodgate.Redis.Benchmarks/*.cs
  cat > "$tree/bench/Floodgate.Redis.Benchmarks/Program.cs" <<'CS'
using System.Globalization;

// Written by bench/redis/starved.sh for an old base: the starved mode alone.
if (args.Length < 2 || args[0] != "starved")
{
    Console.Error.WriteLine("usage: starved <host:port> [seconds] [in-flight] [hogs] [timeout-ms] [decisions/s]");
    return 2;
}

return await StarvedLoad.RunAsync(args[1], Arg(args, 2, 15), Arg(args, 3, 64), Arg(args, 4, 4), Arg(args, 5, 50), Arg(args, 6, 4000));

static int Arg(string[] args, int index, int fallback) =>
    args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
CS
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build "$tree/bench/Floodgate.Redis.Benchmarks" -c Release -nologo -clp:ErrorsOnly -o "$dir/build-base" >/dev/null
dotnet build bench/Floodgate.Redis.Benchmarks -c Release -nologo -clp:ErrorsOnly -o "$dir/build-work" >/dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "base: $base ($(git rev-parse --short "$base")), work: this checkout ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ', modified'))"
kind="threads spinning beside the load"; [ "$hogs" -lt 0 ] && kind="CPU-bound loops through the load's thread pool"
echo "each run: ${seconds} s, ${hogs#-} $kind on CPU 0, $inflight in flight offering ${rate}/s, timeout ${timeout_ms} ms, on_failure closed; redis-server on CPU 1"
printf '%-6s %-5s %10s %12s %8s %8s %8s %13s %9s %9s\n' round build decisions on_failure share timeout late circuit_open openings redis-max
for round in $(seq 1 "$rounds"); do
  order="base work"; [ $((round % 2)) -eq 0 ] && order="work base"
  for build in $order; do
    # Redis's own latency meanwhile, from a client on Redis's CPU: the largest sample of the run, in ms.
    taskset -c 1 redis-cli -p "$port" --latency-history --raw -i 1 > "$dir/latency" 2>&1 &
    lat=$!
    pids+=("$lat")
    line=$(taskset -c 0 dotnet "$dir/build-$build/Floodgate.Redis.Benchmarks.dll" starved "127.0.0.1:$port" "$seconds" "$inflight" "$hogs" "$timeout_ms" "$rate" | tee "$dir/out" | awk '$1 == "result"')
    kill "$lat" 2>/dev/null || true
    wait "$lat" 2>/dev/null || true
    redis_max=$(awk 'NF == 4 && $2 ~ /^[0-9]+$/ { if ($2 + 0 > m) m = $2 + 0 } END { print m + 0 }' "$dir/latency")
    read -r _ decisions onfailure share openings timeouts late open _ <<< "$line"
    printf '%-6s %-5s %10s %12s %7s%% %8s %8s %13s %9s %9s\n' "$round" "$build" "$decisions" "$onfailure" "$share" "$timeouts" "$late" "$open" "$openings" "$redis_max" | tee -a "$dir/results"
  done
done

echo
echo "medians over $rounds rounds"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for build in base work; do
  share=$(awk -v b="$build" '$2 == b { sub("%", "", $5); print $5 }' "$dir/results" | median)
  opened=$(awk -v b="$build" '$2 == b { print $9 }' "$dir/results" | median)
  printf '%-5s on_failure %6s %%   breaker openings %s\n' "$build" "$share" "$opened"
done
